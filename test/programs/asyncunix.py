"""A python3 asyncio program: a unix-socket server (bound to a path) and a
client in the same event loop exchange numbered messages, one every 50 ms,
and print "round N" as each answer comes back. The server answers each line
with its number doubled, so a lost or repeated message shows. SIGUSR1 prints
PASS if every answer so far was right, and exits."""
import asyncio
import os
import signal
import sys

path = os.path.join(sys.argv[1] if len(sys.argv) > 1 else '.', 'async.sock')
ok = True


async def serve(reader, writer):
    while line := await reader.readline():
        writer.write(b'%d\n' % (2 * int(line)))
        await writer.drain()


async def main():
    global ok
    server = await asyncio.start_unix_server(serve, path)
    reader, writer = await asyncio.open_unix_connection(path)
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: done.set_result(None))
    n = 0
    while not done.done():
        n += 1
        writer.write(b'%d\n' % n)
        answer = int(await reader.readline())
        if answer != 2 * n:
            ok = False
            print(f'FAIL: round {n} answered {answer}', flush=True)
        print(f'round {n}', flush=True)
        if n == 3:
            print('READY', flush=True)
        await asyncio.sleep(0.05)
    print('PASS' if ok else 'FAIL: a wrong answer', flush=True)
    server.close()
    sys.exit(0 if ok else 1)


asyncio.run(main())
