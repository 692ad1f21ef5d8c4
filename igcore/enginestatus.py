"""What the engine is doing, as one snapshot read without its lock: what the health probes
(igcore.probes) answer from. Taking the engine's lock there would make a probe wait behind a
reload, and hang on the very wedge it is meant to see."""

from __future__ import annotations

from dataclasses import dataclass

RUNNING = "running"


@dataclass(frozen=True)
class GadgetState:
    label: str          # "trace exec": category and name, from the plugin
    state: str          # RUNNING, or the failure: "start_failed", "thread_died"
    reason: str = ""    # ig's one line on the failure (an exception's text: hostile)


@dataclass(frozen=True)
class EngineStatus:
    started: bool                       # the first config's gadgets were started (or failed for good)
    busy: str | None                    # "start", "reload" or "stop" while one holds the engine
    busy_seconds: float                 # for how long it has held the engine
    gadgets: tuple[GadgetState, ...]    # every gadget of the config in force

    @property
    def failed(self) -> tuple[GadgetState, ...]:
        return tuple(g for g in self.gadgets if g.state != RUNNING)
