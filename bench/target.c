/*
 * bench target: maps N bytes of private anonymous memory, writes every word
 * with a pattern (non-zero, different on every page), prints READY and waits.
 * On SIGUSR1 it checks the whole region against the pattern and exits 0 if
 * it is intact, 1 otherwise (printing the first bad word).
 *
 * Usage: target BYTES        (compiled by bench/bench.mjs with gcc -O2)
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

/* splitmix64 of the word index: never the same twice, never all-zero pages. */
static inline uint64_t pattern(uint64_t i)
{
	uint64_t z = i + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31)) | 1;
}

/*
 * The baseline: write the same memory (same bytes, same 4 KiB pages as the
 * target's) to FILE with large sequential writes, no fsync; print the seconds.
 */
static int plain_write(const char *file, const void *buf, size_t len)
{
	struct timespec a, b;
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0) {
		perror(file);
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (size_t done = 0; done < len;) {
		size_t n = len - done > (1UL << 30) ? (1UL << 30) : len - done;
		ssize_t w = write(fd, (const char *)buf + done, n);

		if (w <= 0) {
			perror("write");
			return 2;
		}
		done += (size_t)w;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	close(fd);
	unlink(file);
	printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2 && !(argc == 4 && !strcmp(argv[1], "--write"))) {
		fprintf(stderr, "usage: %s BYTES | --write FILE BYTES\n", argv[0]);
		return 2;
	}
	size_t len = strtoull(argv[argc - 1], NULL, 0) & ~4095ULL;
	uint64_t *w = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	size_t n = len / 8;
	for (size_t i = 0; i < n; i++)
		w[i] = pattern(i);
	if (argc == 4)
		return plain_write(argv[2], w, len);

	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);

	printf("READY %zu bytes at %p\n", len, (void *)w);
	fflush(stdout);

	while (!got_usr1)
		sigsuspend(&old);

	for (size_t i = 0; i < n; i++)
		if (w[i] != pattern(i)) {
			printf("BAD word %zu at %p: %#llx, want %#llx\n", i, (void *)&w[i],
			       (unsigned long long)w[i], (unsigned long long)pattern(i));
			return 1;
		}
	printf("OK %zu bytes intact\n", len);
	return 0;
}
