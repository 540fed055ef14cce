"""ptyrun: run a command on a fresh pseudo-terminal, for the e2e tests.

    python3 ptyrun.py OUT [--input FILE] [--size ROWSxCOLS] -- CMD [ARG...]

The child is a session leader whose controlling terminal is the pty's slave
(stdin, stdout and stderr); it execs CMD, the way an interactive shell's
terminal looks to the jobs it starts. The parent copies everything the
terminal shows (the master's output) to OUT (appended, unbuffered) until the
child exits, then drains what is left and exits with the child's status
(128+N when a signal N killed it).

--input FILE: whatever is appended to FILE is typed into the terminal (written
to the master), so a test can give the terminal's readers keystrokes.
--size: the window size set on the terminal (default 40x132).

Reads of the master fail with EIO once every slave fd is closed: that is no
error here; other holders of the slave (jobs the child left behind) do not
keep ptyrun alive after its child exited.
"""
import errno
import fcntl
import os
import pty
import select
import struct
import sys
import termios


def usage():
    sys.stderr.write("usage: ptyrun.py OUT [--input FILE] [--size ROWSxCOLS] -- CMD [ARG...]\n")
    sys.exit(2)


def main():
    args = sys.argv[1:]
    if "--" not in args:
        usage()
    sep = args.index("--")
    opts, cmd = args[:sep], args[sep + 1:]
    if not opts or not cmd:
        usage()
    out_path, opts = opts[0], opts[1:]
    input_path = None
    rows, cols = 40, 132
    while opts:
        if opts[0] == "--input" and len(opts) > 1:
            input_path, opts = opts[1], opts[2:]
        elif opts[0] == "--size" and len(opts) > 1:
            rows, cols = (int(x) for x in opts[1].split("x"))
            opts = opts[2:]
        else:
            usage()

    out = open(out_path, "ab", buffering=0)
    pid, master = pty.fork()
    if pid == 0:
        # Only the terminal: fds whoever started us leaked would end up in the
        # jobs (and in their dumps).
        for name in os.listdir("/proc/self/fd"):
            if int(name) > 2:
                try:
                    os.close(int(name))
                except OSError:
                    pass
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvp(cmd[0], cmd)
        except OSError as e:
            os.write(2, f"ptyrun: cannot run {cmd[0]}: {e}\n".encode())
        os._exit(127)

    sent = 0
    master_open = True
    status = None

    def pump(timeout):
        """Copies what the master has within timeout; False once it is closed."""
        nonlocal master_open
        if not master_open:
            return False
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(master, 65536)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            master_open = False
            return False
        out.write(data)
        return True

    def feed():
        nonlocal sent
        if input_path is None or not master_open:
            return
        try:
            with open(input_path, "rb") as f:
                f.seek(sent)
                data = f.read()
        except FileNotFoundError:
            return
        while data:
            n = os.write(master, data)
            sent += n
            data = data[n:]

    while status is None:
        if master_open:
            pump(0.05)
            feed()
        else:
            select.select([], [], [], 0.05)
        done, st = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            status = st
    # The child is gone: what it (or anyone) wrote before is in the master's
    # buffer now. Take it, without waiting for other holders of the slave.
    while pump(0.1):
        pass
    out.close()
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
