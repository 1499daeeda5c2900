"""``poi devnet``: a whole poi network of real node processes on 127.0.0.1.

- ``genesis``: keys for every node, the example target for this CPU with genesis stakes;
- ``layout``: who runs what (``plan_devnet``) and each node's data directory and config;
- ``hostile``: the adversary's commits from the hostile example patches;
- ``prebuild``: the shared build cache, filled before any node starts;
- ``launch``: the node processes, their readiness and their end;
- ``progress``: the live view polled from the nodes' HTTP APIs;
- ``summary``: the final table and the done-condition;
- ``run``: all of it in order (``run_devnet``).
"""

from .errors import DevnetError
from .run import DevnetOptions, run_devnet

__all__ = ["DevnetError", "DevnetOptions", "run_devnet"]
