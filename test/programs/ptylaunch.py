"""Start PROGRAM ARGS... as a session leader on a new pseudo-terminal (stdin,
stdout and stderr), as a container runtime starts its init on a console. Prints
"CHILD <pid> <pts name>" and then everything the program writes to the terminal.
When the program is gone (dumped), closes the master and exits, freeing the
pty's number for a restore."""
import os
import sys

master, slave = os.openpty()
name = os.ttyname(slave)
pid = os.fork()
if pid == 0:
    os.close(master)
    os.setsid()
    import fcntl
    import termios
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
    os.execv(sys.argv[1], sys.argv[1:])
os.close(slave)
print('CHILD %d %s' % (pid, name), flush=True)
while True:
    try:
        data = os.read(master, 4096)
    except OSError:
        break
    if not data:
        break
    sys.stdout.write(data.decode(errors='replace'))
    sys.stdout.flush()
os.waitpid(pid, 0)
os.close(master)
print('LAUNCHER DONE', flush=True)
