/*
 * A thread that spends nearly all its time inside an rseq critical section
 * (glibc's own registration), so that a dump stops it there. The kernel
 * aborts a section that is interrupted; the restore must do the same, by
 * resuming the thread at the abort handler (as CRIU's fixup_thread_rseq).
 * Resumed in the section with the kernel's rseq_cs pointer gone, the thread
 * would finish it "normally" while the pointer it set is no longer there:
 * each section checks that, as zdtm's rseq01 does.
 * SIGUSR2: one section is counted as broken first.
 */
#include "common.h"
#include <pthread.h>
#include <sys/rseq.h>

static volatile int stop;
static volatile long exits, aborts, broken;

/* One section: set rseq_cs, spin, then read rseq_cs back (c1) next to what was set (c2). */
static int section(volatile struct rseq *rs, uint64_t *c1, uint64_t *c2)
{
	__asm__ __volatile__ goto(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f-1f), 4f\n\t"
		".popsection\n\t"
		"leaq 3b(%%rip), %%rax\n\t"
		"1:\n\t"
		"movq %%rax, %[cs]\n\t"
		"mov $20000000, %%rcx\n\t"
		"5:\n\t"
		"dec %%rcx\n\t"
		"jnz 5b\n\t"
		"movq %%rax, %[c2]\n\t"
		"movq %[cs], %%rax\n\t"
		"movq %%rax, %[c1]\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		".byte 0x0f, 0xb9, 0x3d\n\t"
		".long 0x53053053\n\t"
		"4:\n\t"
		"jmp %l[abort]\n\t"
		".popsection\n\t"
		:
		: [cs] "m"(rs->rseq_cs), [c1] "m"(*c1), [c2] "m"(*c2)
		: "memory", "cc", "rax", "rcx"
		: abort);
	return 0;
abort:
	return 1;
}

static void *worker(void *arg)
{
	volatile struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);

	(void)arg;
	while (!stop) {
		uint64_t c1 = 0, c2 = 0;

		if (section(rs, &c1, &c2))
			aborts++;
		else if (c1 != c2)
			broken++;
		else
			exits++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th;
	long seen;

	(void)argc;
	(void)argv;
	prog_init();
	MUST(__rseq_size >= 20); /* glibc registered rseq for every thread */
	MUST(pthread_create(&th, NULL, worker, NULL) == 0);
	while (exits + aborts < 2)
		usleep(1000);
	prog_ready();

	if (wait_for_signal())
		broken++;
	/* A few sections ended after the restore, aborted or not: on a loaded
	 * machine every one may be preempted, and so aborted, for a while. */
	seen = exits + aborts;
	while (exits + aborts < seen + 3 && !broken)
		usleep(1000);
	stop = 1;
	MUST(pthread_join(th, NULL) == 0);
	if (broken)
		failf("%ld rseq sections finished with their rseq_cs pointer gone (%ld done, %ld aborted)", broken, exits, aborts);
	return prog_finish();
}
