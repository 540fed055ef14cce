/* Shared anonymous memory between a parent and the child it forked: four
 * pages, the second made read-only (three VMAs, the later ones at an offset
 * into the one object). After restore each side must see what the other writes,
 * in every part, and the contents from before the dump must be there. A second
 * shared mapping the parent never touches gets a page written by the child only
 * before the dump: it must be there after the restore too.
 * SIGUSR2: change a byte of the pattern first (FAIL). */
#include "common.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096

static void say(int fd, char c)
{
	MUST(write(fd, &c, 1) == 1);
}

static char hear(int fd)
{
	char c = 0;
	return read(fd, &c, 1) == 1 ? c : 0;
}

int main(void)
{
	int down[2], up[2], corrupt;
	unsigned char *p, *q;

	prog_init();
	p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	MUST(p != MAP_FAILED);
	for (int i = 0; i < 4 * PG; i++)
		p[i] = (unsigned char)(i * 7 + 3);
	MUST(mprotect(p + PG, PG, PROT_READ) == 0);
	q = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	MUST(q != MAP_FAILED);
	MUST(pipe(down) == 0 && pipe(up) == 0);
	pid_t child = fork();
	MUST(child >= 0);
	if (child == 0) {
		q[PG + 3] = 0x77;
		say(up[1], 'q');
		if (hear(down[0]) != 'w')
			_exit(2);
		p[8] = 0xa1;
		p[2 * PG + 8] = 0xa2;
		p[4 * PG - 1] = 0xa3;
		say(up[1], 'k');
		if (hear(down[0]) != 'c')
			_exit(3);
		_exit(p[3 * PG] == 0xb1 && p[16] == 0xb2 ? 0 : 1);
	}
	MUST(hear(up[0]) == 'q');
	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		p[5] ^= 1;
	for (int i = 0; i < 4 * PG; i++) {
		if (p[i] != (unsigned char)(i * 7 + 3)) {
			failf("byte %d changed: %#x", i, p[i]);
			break;
		}
	}
	if (q[PG + 3] != 0x77)
		failf("a page only the child wrote before the dump is gone (%#x)", q[PG + 3]);
	say(down[1], 'w');
	if (hear(up[0]) != 'k')
		failf("the child did not answer");
	else if (p[8] != 0xa1 || p[2 * PG + 8] != 0xa2 || p[4 * PG - 1] != 0xa3)
		failf("the child's writes do not show here (%#x %#x %#x): the memory is no longer shared",
		      p[8], p[2 * PG + 8], p[4 * PG - 1]);
	p[3 * PG] = 0xb1;
	p[16] = 0xb2;
	say(down[1], 'c');
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		failf("the child does not see the parent's writes (status %#x)", st);
	return prog_finish();
}
