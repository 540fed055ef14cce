// A real node program: timers on the libuv loop (V8 and libuv threads, epoll,
// eventfd, pipes). Prints "tick N" every 100 ms; on SIGUSR1 checks that its heap
// object survived and that a worker-thread-backed crypto call still works, then
// prints PASS and exits.
const crypto = require('node:crypto');
const big = Buffer.alloc(8 << 20, 7);
const marker = { name: 'cryo', list: Array.from({ length: 1000 }, (_, i) => i * i) };
let n = 0;
setInterval(() => console.log(`tick ${++n}`), 100);
process.on('SIGUSR1', () => {
  let ok = big.every((b) => b === 7) && marker.list[999] === 999 * 999;
  crypto.pbkdf2('pw', 'salt', 1000, 32, 'sha256', (err, key) => {
    ok = ok && !err && key.length === 32;
    console.log(ok ? 'PASS' : 'FAIL: heap or thread pool broken');
    process.exit(ok ? 0 : 1);
  });
});
