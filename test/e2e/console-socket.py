# A console socket for runc (--console-socket), as runc's recvtty: it takes
# each pty master runc sends (SCM_RIGHTS), and copies what the container writes
# on it to a file, with a line "MASTER N" as the Nth master comes. A master
# that reads EOF or EIO (its slave closed) is dropped, as recvtty stops.
import os, select, socket, sys

path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(4)
log = open(out, 'ab', buffering=0)
masters = []
count = 0
while True:
    ready, _, _ = select.select([s] + masters, [], [])
    for x in ready:
        if x is s:
            c, _ = s.accept()
            _, fds, _, _ = socket.recv_fds(c, 4096, 4)
            c.close()
            for fd in fds:
                masters.append(fd)
                count += 1
                log.write(b'MASTER %d\n' % count)
        else:
            try:
                d = os.read(x, 4096)
            except OSError:
                d = b''
            if not d:
                masters.remove(x)
                os.close(x)
            else:
                log.write(d)
