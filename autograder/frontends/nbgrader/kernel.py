"""The kernel that runs a student's notebook under `nbgrader autograde`, in a jail.

nbgrader still drives the kernel (nbclient starts it through this kernel manager, which the
course's nbgrader_config.py names), but the kernel runs inside `autograder.engine.jail`: its own uid
and PID namespace, no network, a read-only view of Python, the grader's packages, the raw MNIST
files and the student's own autograded folder, a private /tmp. It cannot reach `source/`,
`release/`, `gradebook.db`, other students' folders or the repository, and nothing it starts
outlives it. With no network, the kernel and nbgrader talk over Unix sockets (ZeroMQ's `ipc`
transport) in a folder of the kernel's own, bound read-write.

Where no jail can run, the kernel refuses to start unless the course allows it
(`c.JailedKernelManager.allow_unjailed = True`, documented in the README).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer

from autograder.engine import jail as jails
from autograder.engine import leftovers


class JailedKernelManager(AsyncKernelManager):
    allow_unjailed = Bool(False, config=True,
                          help="Run the kernel as a plain process where no jail can start "
                               "(only for submissions you trust)")
    memory_mb = Integer(4096, config=True, help="The kernel's memory, shared memory included")

    _jail = None
    _folder = None

    async def _async_pre_start_kernel(self, **kw):
        found = jails.require(untrusted_ok=self.allow_unjailed)
        if found.jailed:
            self._start_jail(found, kw.get("cwd"))
        started = await super()._async_pre_start_kernel(**kw)
        if self._jail is not None and self._jail.found.own_uid:  # written 0600 for root
            os.chown(self.connection_file, self._jail.uid, self._jail.gid)
        return started

    def _start_jail(self, found, cwd) -> None:
        from shared import data

        self._folder = leftovers.private_dir("kernel")  # swept if nbgrader is killed
        self.transport, self.ip = "ipc", str(self._folder / "kernel")
        self.connection_file = str(self._folder / "kernel.json")
        work = str(Path(cwd).resolve()) if cwd else "/tmp"
        self._jail = jails.Jail(
            found, self.memory_mb, files=[data.raw_dir()] + ([work] if cwd else []),
            writable=[self._folder], cwd=work,
            extra_env={"MNIST_DATA_DIR": str(data.data_dir()), "MNIST_RUN_DIR": "/tmp/runs"})
        self._jail.give(self._folder, 0o700)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        return self._jail.command(cmd) if self._jail is not None else cmd

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self._jail is not None and not restart:
            self._jail.destroy()  # anything the kernel started, gone with it
            shutil.rmtree(self._folder, ignore_errors=True)
            self._jail = self._folder = None
