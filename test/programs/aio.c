/*
 * aio: AIO contexts (io_setup) must come back at their address with their ring:
 * its size, head and tail, and the completed events not yet collected, in order.
 *
 * Two rings: a one-page ring that went round once (its tail is below its head),
 * and a larger one. Writes to /dev/null complete at once; every other one is
 * collected, so half of them wait in the ring, each with its number as aio_data.
 * After restore: the same nr, head and tail; io_getevents returns exactly the
 * waiting events; one more write completes as the next event.
 * SIGUSR2: one waiting event of the large ring is collected first.
 */
#include "common.h"

#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>

struct ring {
	unsigned id, nr, head, tail, magic, compat, incompat, header_length;
};

struct ctx {
	const char *name;
	unsigned reqs; /* asked of io_setup */
	unsigned writes; /* submitted before READY */
	aio_context_t id;
	unsigned nr, head, tail;
};

static struct ctx ctxs[] = {
	{ "small ring", 1, 0 },
	{ "large ring", 64, 40 },
};

static int devnull;

static struct ring *ring_of(struct ctx *c)
{
	return (struct ring *)c->id;
}

static void submit(struct ctx *c, uint64_t data)
{
	static char byte;
	struct iocb cb = { .aio_data = data, .aio_lio_opcode = IOCB_CMD_PWRITE, .aio_fildes = devnull,
			   .aio_buf = (uint64_t)(uintptr_t)&byte, .aio_nbytes = 1 };
	struct iocb *p = &cb;

	MUST(syscall(__NR_io_submit, c->id, 1, &p) == 1);
}

/* Collect up to n events at once (none waited for); returns how many. */
static int collect(struct ctx *c, struct io_event *ev, int n)
{
	struct timespec zero = { 0, 0 };

	return (int)syscall(__NR_io_getevents, c->id, 0, n, ev, &zero);
}

int main(int argc, char **argv)
{
	struct io_event ev[256];
	int corrupt;

	(void)argc;
	(void)argv;
	prog_init();
	MUST((devnull = open("/dev/null", O_WRONLY)) >= 0);
	for (size_t k = 0; k < sizeof(ctxs) / sizeof(ctxs[0]); k++) {
		struct ctx *c = &ctxs[k];

		MUST(syscall(__NR_io_setup, c->reqs, &c->id) == 0);
		/* The small ring goes round once: its tail ends below its head. */
		if (!c->writes)
			c->writes = ring_of(c)->nr + 6;
		for (unsigned i = 0; i < c->writes; i++) {
			submit(c, i);
			if (i % 2)
				MUST(collect(c, ev, 1) == 1 && ev[0].data == i / 2);
		}
		c->nr = ring_of(c)->nr;
		c->head = ring_of(c)->head;
		c->tail = ring_of(c)->tail;
	}
	MUST(ctxs[0].tail < ctxs[0].head);
	prog_ready();

	corrupt = wait_for_signal();
	if (corrupt)
		collect(&ctxs[1], ev, 1);

	for (size_t k = 0; k < sizeof(ctxs) / sizeof(ctxs[0]); k++) {
		struct ctx *c = &ctxs[k];
		struct ring *r = ring_of(c);
		unsigned waiting = c->writes - c->writes / 2;
		int got;

		if (r->nr != c->nr || r->head != c->head || r->tail != c->tail) {
			failf("%s: nr %u head %u tail %u, were %u %u %u", c->name, r->nr, r->head, r->tail, c->nr, c->head, c->tail);
			continue;
		}
		got = collect(c, ev, 256);
		if (got != (int)waiting) {
			failf("%s: %d events waiting, want %u", c->name, got, waiting);
			continue;
		}
		for (int i = 0; i < got; i++)
			if (ev[i].data != c->writes / 2 + i || ev[i].res != 1) {
				failf("%s: event %d has data %llu res %lld", c->name, i, (unsigned long long)ev[i].data, (long long)ev[i].res);
				break;
			}
		submit(c, 12345);
		if (collect(c, ev, 256) != 1 || ev[0].data != 12345)
			failf("%s: a write after restore did not complete as its next event", c->name);
	}
	return prog_finish();
}
