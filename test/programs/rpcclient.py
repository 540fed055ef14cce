"""A client of CRIU's RPC protocol built on pycriu (Debian's criu package), as
container runtimes drive CRIU. Run with /usr/bin/python3.

  rpcclient.py bin:PATH|sk:SOCKET version
  rpcclient.py bin:PATH|sk:SOCKET dump PID DIR [--leave-running] [--notify] [--nack ACTION] [--config FILE]
                                   [--ext-files KEY,KEY...]
  rpcclient.py bin:PATH|sk:SOCKET restore DIR [--sibling] [--notify] [--nack ACTION] [--wait]
                                   [--shell-job --orphan-pts] [--exec]

Prints one JSON object per line: each notification ({"notify": ...}) and the
outcome. After a restore with --sibling the restored task is this process's
child: it is sent SIGUSR1 and waited for, and its exit status printed. With
--wait the connection is kept open (keep_open) and the restored task, a child of
cryo, is sent SIGUSR1 and waited for with a WAIT_PID request. With --orphan-pts
the master of the job's new terminal comes with the orphan-pts-master
notification: "ping" is typed into it before SIGUSR1, and what the job writes
to its terminal is printed ({"tty": ...}). With --exec (and --notify) the
request carries exec_cmd, a shell that waits a little: the restored task's parent
is printed ({"ppid": ..., "swrk": ...}) while that shell, once cryo swrk, runs.
With --ext-files (and --notify) the answer to query-ext-files names those
external resources (opts.external), as a runtime answers it.
"""
import array
import json
import os
import signal
import socket
import sys

sys.path.insert(0, '/usr/lib/python3/dist-packages')
import pycriu  # noqa: E402

rpc = pycriu.rpc
comm_mod = sys.modules['pycriu.criu']


def out(**kw):
    print(json.dumps(kw), flush=True)


def client(where):
    c = pycriu.criu()
    kind, _, path = where.partition(':')
    if kind == 'bin':
        c.use_binary(path)
    else:
        c.use_sk(path)
    return c


received_fds = []


def converse(c, req, nack, keep=False, ext_files=None):
    """Send req and answer notifications until the final response (connection kept with keep)."""
    sk = c._comm.connect(False)
    sk.send(req.SerializeToString())
    while True:
        buf, anc, _, _ = sk.recvmsg(1 << 20, socket.CMSG_SPACE(16))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received_fds.extend(array.array('i', data[:len(data) - len(data) % 4]))
        if not buf:
            out(success=False, errmsg='connection closed')
            return None
        resp = rpc.criu_resp()
        resp.ParseFromString(buf)
        if resp.type != rpc.NOTIFY:
            if not keep:
                c._comm.disconnect()
            return resp
        ok = resp.notify.script != nack
        out(notify=resp.notify.script, pid=resp.notify.pid if resp.notify.HasField('pid') else None, ack=ok)
        ack = rpc.criu_req(type=rpc.NOTIFY, notify_success=ok)
        if resp.notify.script == 'query-ext-files' and ext_files:
            ack.opts.images_dir_fd = -1  # required in criu_opts; unused in an answer
            ack.opts.external.extend(ext_files)
        sk.send(ack.SerializeToString())


def main():
    where, action, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    flag = lambda f: f in args
    opt = lambda f: args[args.index(f) + 1] if f in args else None
    c = client(where)
    if action == 'version':
        req = rpc.criu_req(type=rpc.VERSION)
        resp = c._send_req_and_recv_resp(req)
        out(success=resp.success, major=resp.version.major_number, minor=resp.version.minor_number, name=resp.version.name)
        return
    req = rpc.criu_req(type=rpc.DUMP if action == 'dump' else rpc.RESTORE)
    if action == 'dump':
        req.opts.pid = int(args[0])
        args = args[1:]
    req.opts.images_dir_fd = os.open(args[0], os.O_DIRECTORY)
    req.opts.log_level = 4
    req.opts.log_file = action + '.log'
    req.opts.leave_running = flag('--leave-running')
    if flag('--sibling'):
        req.opts.rst_sibling = True
    if flag('--wait'):
        req.keep_open = True
    if flag('--shell-job'):
        req.opts.shell_job = True
    if flag('--orphan-pts'):
        req.opts.orphan_pts_master = True
    if flag('--exec'):
        req.opts.exec_cmd.extend(['/bin/sh', '-c', 'echo "exec as $$"; sleep 2'])
    if opt('--config'):
        req.opts.config_file = opt('--config')
    if flag('--notify'):
        req.opts.notify_scripts = True
        ext = opt('--ext-files')
        resp = converse(c, req, opt('--nack'), keep=flag('--exec'), ext_files=ext.split(',') if ext else None)
        if resp is None:
            return
        if flag('--exec') and resp.success:
            with open('/proc/%d/stat' % resp.restore.pid) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            out(ppid=ppid, swrk=c._comm.swrk)
            os.kill(resp.restore.pid, signal.SIGUSR1)
            c._comm.disconnect()
    else:
        try:
            resp = c._send_req_and_recv_resp(req)
        except Exception as e:  # the connection itself failed
            out(success=False, errmsg=str(e))
            return
    out(success=resp.success, errno=resp.cr_errno, errmsg=resp.cr_errmsg,
        pid=resp.restore.pid if resp.HasField('restore') else None)
    if action == 'restore' and resp.success and flag('--wait'):
        os.kill(resp.restore.pid, signal.SIGUSR1)
        status = c.wait_pid(resp.restore.pid)
        out(waited=os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1)
    if action == 'restore' and resp.success and flag('--sibling'):
        pid = resp.restore.pid
        with open('/proc/%d/stat' % pid) as f:
            ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        out(ppid=ppid, me=os.getpid())
        master = received_fds[0] if received_fds else None
        if master is not None:
            os.write(master, b'ping\n')
        os.kill(pid, signal.SIGUSR1)
        _, status = os.waitpid(pid, 0)
        if master is not None:
            os.set_blocking(master, False)
            text = b''
            try:
                while True:
                    chunk = os.read(master, 4096)
                    if not chunk:
                        break
                    text += chunk
            except OSError:
                pass
            out(tty=text.decode(errors='replace'))
        out(exited=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            signaled=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None)


main()
