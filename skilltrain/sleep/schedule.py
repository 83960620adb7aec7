"""`skilltrain sleep schedule`: the nightly `harvest && mine && run` as a cron line and as a
systemd user timer + service, printed for the user to install. Printed, never installed: a
scheduler entry that edits the user's skill files is theirs to add (and staging means even
the nightly run only proposes; `sleep adopt` is the user's step)."""

from __future__ import annotations

import shlex


def nightly_command(skilltrain: str, skill: str, extra: str = "") -> str:
    """The shell line the scheduler runs."""
    run = f"{skilltrain} sleep run --skill {shlex.quote(skill)}"
    return (f"{skilltrain} sleep harvest && {skilltrain} sleep mine && "
            f"{run}{' ' + extra if extra else ''}")


def cron_line(command: str, hour: int = 3, minute: int = 0) -> str:
    log = "$HOME/.skilltrain/sleep/nightly.log"
    return f"{minute} {hour} * * * {command} >> {log} 2>&1"


def systemd_units(command: str, hour: int = 3, minute: int = 0) -> tuple[str, str]:
    """(skilltrain-sleep.service, skilltrain-sleep.timer) for ~/.config/systemd/user/."""
    service = ("[Unit]\nDescription=skilltrain sleep: learn from the day's agent sessions\n\n"
               "[Service]\nType=oneshot\n"
               f"ExecStart=/bin/sh -c {shlex.quote(command)}\n")
    timer = ("[Unit]\nDescription=Nightly skilltrain sleep\n\n"
             f"[Timer]\nOnCalendar=*-*-* {hour:02d}:{minute:02d}:00\nPersistent=true\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return service, timer


def render(skilltrain: str, skill: str, extra: str = "", hour: int = 3, minute: int = 0) -> str:
    """Everything `sleep schedule` prints."""
    command = nightly_command(skilltrain, skill, extra)
    service, timer = systemd_units(command, hour, minute)
    return (f"# cron (crontab -e):\n{cron_line(command, hour, minute)}\n\n"
            f"# systemd: ~/.config/systemd/user/skilltrain-sleep.service\n{service}\n"
            f"# systemd: ~/.config/systemd/user/skilltrain-sleep.timer\n{timer}\n"
            "# then: systemctl --user daemon-reload && "
            "systemctl --user enable --now skilltrain-sleep.timer\n")
