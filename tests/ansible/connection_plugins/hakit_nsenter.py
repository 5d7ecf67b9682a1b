# The systemd lab's Ansible connection: a task runs inside a container by entering every
# namespace of the container's systemd (nsenter -t PID -a), as `inside` in
# tests/systemd-lab.sh does. No SSH and no keys: the lab's containers are on this machine.
# Test-only; a real pair is reached over SSH.
from __future__ import annotations

import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.connection import ConnectionBase

DOCUMENTATION = """
name: hakit_nsenter
short_description: run tasks in a local container through nsenter into its PID 1
description:
  - Enters every namespace of a process on the controller (the container's systemd) and runs
    the command there with a clean environment. Files are copied through the same door.
options:
  pid:
    description: PID (on the controller) of the container's init.
    vars:
      - name: hakit_nsenter_pid
    required: true
"""

ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
TIMEOUT = 600


class Connection(ConnectionBase):
    transport = "hakit_nsenter"
    has_pipelining = True

    def _door(self) -> list[str]:
        pid = str(self.get_option("pid"))
        if not pid.isdigit():
            raise AnsibleConnectionFailure(f"hakit_nsenter_pid {pid!r} is not a PID")
        return ["nsenter", "-t", pid, "-a"] + ENV

    def _connect(self):
        self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        p = subprocess.run(
            self._door() + ["/bin/sh", "-c", cmd],
            input=in_data,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        return p.returncode, p.stdout, p.stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        with open(in_path, "rb") as f:
            p = subprocess.run(
                self._door() + ["/bin/sh", "-c", "cat > " + shlex.quote(out_path)],
                stdin=f,
                capture_output=True,
                timeout=TIMEOUT,
                check=False,
            )
        if p.returncode != 0:
            raise AnsibleError(f"put {in_path} to {out_path}: {p.stderr.decode(errors='replace')}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        with open(out_path, "wb") as f:
            p = subprocess.run(
                self._door() + ["cat", "--", in_path],
                stdout=f,
                stderr=subprocess.PIPE,
                timeout=TIMEOUT,
                check=False,
            )
        if p.returncode != 0:
            raise AnsibleError(f"fetch {in_path}: {p.stderr.decode(errors='replace')}")

    def close(self):
        self._connected = False
