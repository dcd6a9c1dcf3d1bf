#!/usr/bin/python3
"""fsync_probe.py DIR: what o365-sendmail's root submission asks of the disk,
without the program: two small files written under temporary names and
fsync'ed (id.msg, then id.env), both renamed, then one fsync of DIR: three
flushes (sm_queue_commit).
Prints the wall time in microseconds on stdout and removes its files.
Timed inside one process, so no process start-up is included."""
import os
import sys
import time


def write_synced(dirfd, name, data):
    tmp = ".t" + name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dirfd)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def commit(dirfd, files):
    tmps = [write_synced(dirfd, name, data) for name, data in files]
    for tmp, (name, _) in zip(tmps, files):
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    os.fsync(dirfd)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fsync_probe.py DIR")
    dirfd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
    names = ["probe.msg", "probe.env"]
    try:
        t0 = time.monotonic_ns()
        commit(dirfd, [(names[0], b"x" * 700), (names[1], b"y" * 190)])
        t1 = time.monotonic_ns()
    finally:
        for n in names:
            try:
                os.unlink(n, dir_fd=dirfd)
            except FileNotFoundError:
                pass
        os.close(dirfd)
    print((t1 - t0) // 1000)


if __name__ == "__main__":
    main()
