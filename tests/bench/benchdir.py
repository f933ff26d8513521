"""Where a benchmark keeps its temporary directory.

The daemons measured drop privileges (mxd runs as nobody, Postfix's as
postfix, PostgreSQL as postgres): every directory on the way to their files
must be one that other users may enter. A clone under root's home (mode 0700)
is not, so the build directory is used only when it is reachable, and
/var/tmp (a disk, like the build, not a tmpfs: fsync costs are part of what is
measured) otherwise.
"""

import os


def unreachable_parent(path):
    """The first directory on the way to path that others may not enter
    (no o+x), or None when there is none."""
    d = os.path.abspath(path)
    while True:
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent
        if os.path.isdir(d) and not os.stat(d).st_mode & 0o001:
            return d


def default_work_dir(bin_dir):
    """The build directory (the parent of bin_dir) when unprivileged daemons
    can reach it, /var/tmp otherwise."""
    build = os.path.dirname(os.path.abspath(bin_dir))
    if unreachable_parent(os.path.join(build, "x")) is None:
        return build
    return "/var/tmp"


def check_work_dir(work_dir):
    """None when unprivileged daemons can reach a directory made in work_dir,
    else an error message saying which parent keeps them out."""
    blocked = unreachable_parent(os.path.join(os.path.abspath(work_dir), "x"))
    if blocked is None:
        return None
    return (f"{blocked} is mode {os.stat(blocked).st_mode & 0o7777:o}: the daemons that "
            f"drop privileges cannot reach {work_dir}; choose another --work-dir")
