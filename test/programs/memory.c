/*
 * memory: every common kind of mapping, filled with patterns, must come back
 * with the same contents at the same addresses with the same permissions.
 *
 * Regions: brk heap (big block + many small chunks), a 64 MiB anonymous
 * private mapping (partly untouched: must read as zeroes), a private file
 * mapping with COW-dirtied pages, a read-only private file mapping at an
 * offset, a read-only anonymous region, a PROT_NONE reservation, data hidden
 * behind PROT_NONE, a MAP_SHARED file mapping, MAP_SHARED anonymous memory,
 * the stack, .data and .bss. /proc/self/maps is snapshotted before READY and
 * compared line by line afterwards (range, perms, offset, path).
 */
#include "common.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define PG 4096UL
#define MiB (1UL << 20)
#define WORDS(len) ((len) / 8)

/* .data: initialised, so it lives in .data, then overwritten with a pattern. */
uint64_t data_arr[2048] = { 1, 2, 3 };
const char data_str[] = "cryo .data string survives";
/* .bss */
static uint64_t bss_arr[64 * 1024];

static void fill(void *p, size_t len, uint64_t seed, uint64_t first)
{
	uint64_t *w = p;

	for (size_t i = 0; i < WORDS(len); i++)
		w[i] = pattern64(seed, first + i);
}

/* Compares p[0..len) with the pattern; reports the first mismatch. */
static void check(const char *what, const void *p, size_t len, uint64_t seed, uint64_t first)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < WORDS(len); i++)
		if (w[i] != pattern64(seed, first + i)) {
			failf("%s: word %zu at %p is %#llx, want %#llx", what, i, (void *)&w[i],
			      (unsigned long long)w[i],
			      (unsigned long long)pattern64(seed, first + i));
			return;
		}
}

static void check_zero(const char *what, const void *p, size_t len)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < WORDS(len); i++)
		if (w[i]) {
			failf("%s: word %zu at %p is %#llx, want 0", what, i, (void *)&w[i],
			      (unsigned long long)w[i]);
			return;
		}
}

/* ---- /proc/self/maps snapshots (static storage: no malloc, no new VMAs) ---- */

struct vma {
	unsigned long start, end, off;
	char perms[8];
	char path[256];
};

struct maps {
	int n;
	struct vma v[1024];
};

static char maps_text[256 * 1024];
static struct maps maps_before, maps_after;

static void read_maps(struct maps *m)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t r;
	char *line;

	MUST(fd >= 0);
	while ((r = read(fd, maps_text + len, sizeof(maps_text) - 1 - len)) > 0)
		len += r;
	close(fd);
	maps_text[len] = 0;
	m->n = 0;
	for (line = maps_text; *line && m->n < 1024; line = strchr(line, '\n') + 1) {
		struct vma *v = &m->v[m->n];
		int pos = 0;

		v->path[0] = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %*s %*s%n", &v->start, &v->end, v->perms, &v->off,
			   &pos) >= 4) {
			char *p = line + pos, *nl;

			while (*p == ' ')
				p++;
			nl = strchr(p, '\n');
			snprintf(v->path, sizeof(v->path), "%.*s", (int)(nl ? nl - p : (long)strlen(p)), p);
			m->n++;
		}
		if (!strchr(line, '\n'))
			break;
	}
}

static void print_vma(const char *tag, const struct vma *v)
{
	fprintf(stderr, "  %s %lx-%lx %s %08lx %s\n", tag, v->start, v->end, v->perms, v->off, v->path);
}

static int same_vma(const struct vma *a, const struct vma *b)
{
	return a->start == b->start && a->end == b->end && a->off == b->off &&
	       !strcmp(a->perms, b->perms) && !strcmp(a->path, b->path);
}

/* Both lists are sorted by address: merge them and print what differs. */
static void compare_maps(void)
{
	int i = 0, j = 0, differ = 0;

	while (i < maps_before.n || j < maps_after.n) {
		const struct vma *a = i < maps_before.n ? &maps_before.v[i] : NULL;
		const struct vma *b = j < maps_after.n ? &maps_after.v[j] : NULL;

		if (a && b && same_vma(a, b)) {
			i++;
			j++;
			continue;
		}
		if (!differ++)
			fprintf(stderr, "/proc/self/maps differs (- before, + after):\n");
		if (a && (!b || a->start < b->start)) {
			print_vma("-", a);
			i++;
		} else if (b && (!a || b->start < a->start)) {
			print_vma("+", b);
			j++;
		} else {
			print_vma("-", a);
			print_vma("+", b);
			i++;
			j++;
		}
	}
	if (differ)
		failf("/proc/self/maps: %d differences (see stderr)", differ);
}

/* Touches 1 MiB of stack below us now, so that running the signal handler
 * later can never grow the [stack] VMA and change /proc/self/maps. */
static __attribute__((noinline)) void grow_stack(void)
{
	volatile char buf[1 << 20];

	for (long i = sizeof(buf) - 1; i >= 0; i -= PG)
		buf[i] = 1;
	buf[0] = 1;
}

static int make_file(const char *dir, const char *name, size_t len, uint64_t seed, char *path_out)
{
	static uint64_t buf[WORDS(64 * PG)];
	int fd;

	snprintf(path_out, 512, "%s/%s", dir, name);
	fd = open(path_out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	MUST(fd >= 0);
	MUST(len <= sizeof(buf));
	fill(buf, len, seed, 0);
	MUST(write(fd, buf, len) == (ssize_t)len);
	return fd;
}

static long sys_brk0(void)
{
	return syscall(SYS_brk, 0);
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	char priv_path[512], shared_path[512];
	volatile uint64_t stack_arr[4096];
	static void *small[1000];
	static size_t small_len[1000];
	static uint64_t page_buf[WORDS(PG)];
	uint64_t *heap, *anon, *ro, *hidden, *shanon;
	char *priv, *priv_off, *shared, *none;
	long brk_before, brk_after;
	int fd, i, corrupt;
	const size_t heap_len = 8 * MiB, anon_len = 64 * MiB, filled_len = 48 * MiB;

	prog_init();

	/* brk heap: keep malloc off mmap for these sizes. */
	MUST(mallopt(M_MMAP_THRESHOLD, 256 * MiB) == 1);
	MUST(mallopt(M_TRIM_THRESHOLD, 512 * MiB) == 1);
	for (i = 0; i < 1000; i++) {
		small_len[i] = 16 + (i * 37) % 1000;
		small[i] = malloc(small_len[i]);
		MUST(small[i]);
		fill(small[i], small_len[i] & ~7UL, 100 + i, 0);
	}
	heap = malloc(heap_len);
	MUST(heap);
	fill(heap, heap_len, 1, 0);

	/* 64 MiB anonymous: 48 MiB filled, the rest untouched but for one page. */
	anon = mmap(NULL, anon_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	MUST(anon != MAP_FAILED);
	fill(anon, filled_len, 2, 0);
	fill((char *)anon + 56 * MiB, PG, 3, 0);

	/* Private file mapping: 16 pages, pages 3 and 7 dirtied (COW). */
	fd = make_file(dir, "private.dat", 16 * PG, 4, priv_path);
	priv = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	MUST(priv != MAP_FAILED);
	fill(priv + 3 * PG, PG, 5, 0);
	fill(priv + 7 * PG, PG, 5, 1000);
	/* Read-only private mapping of the same file at an offset (pages 4..11). */
	priv_off = mmap(NULL, 8 * PG, PROT_READ, MAP_PRIVATE, fd, 4 * PG);
	MUST(priv_off != MAP_FAILED);
	close(fd);

	/* Read-only anonymous region with contents. */
	ro = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	MUST(ro != MAP_FAILED);
	fill(ro, MiB, 6, 0);
	MUST(mprotect(ro, MiB, PROT_READ) == 0);

	/* A PROT_NONE reservation, never touched. */
	none = mmap(NULL, 2 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	MUST(none != MAP_FAILED);

	/* Data hidden behind PROT_NONE (a GC or JIT does this). */
	hidden = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	MUST(hidden != MAP_FAILED);
	fill(hidden, 64 * PG, 7, 0);
	MUST(mprotect(hidden, 64 * PG, PROT_NONE) == 0);

	/* MAP_SHARED file mapping; page 2 changed through the mapping. */
	fd = make_file(dir, "shared.dat", 16 * PG, 8, shared_path);
	shared = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	MUST(shared != MAP_FAILED);
	close(fd);
	fill(shared + 2 * PG, PG, 9, 0);

	/* MAP_SHARED anonymous memory. */
	shanon = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	MUST(shanon != MAP_FAILED);
	fill(shanon, MiB, 12, 0);

	/* Stack, .data, .bss. */
	for (i = 0; i < 4096; i++)
		stack_arr[i] = pattern64(13, i);
	fill(data_arr, sizeof(data_arr), 14, 0);
	fill(bss_arr, sizeof(bss_arr), 15, 0);

	grow_stack();
	brk_before = sys_brk0();
	read_maps(&maps_before);
	prog_ready();

	corrupt = wait_for_signal();
	if (corrupt) {
		anon[12345] ^= 1;
		MUST(mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED);
	}

	/* Layout first: nothing below may create or change a mapping before this. */
	read_maps(&maps_after);
	compare_maps();
	brk_after = sys_brk0();
	if (brk_after != brk_before)
		failf("brk is %#lx, was %#lx", brk_after, brk_before);

	for (i = 0; i < 1000; i++)
		check("heap small chunk", small[i], small_len[i] & ~7UL, 100 + i, 0);
	check("heap 8 MiB block", heap, heap_len, 1, 0);

	check("anon filled part", anon, filled_len, 2, 0);
	check_zero("anon untouched part below", (char *)anon + filled_len, 8 * MiB);
	check("anon lone page", (char *)anon + 56 * MiB, PG, 3, 0);
	check_zero("anon untouched part above", (char *)anon + 56 * MiB + PG, 8 * MiB - PG);

	for (i = 0; i < 16; i++) {
		if (i == 3)
			check("private file page 3 (dirty)", priv + i * PG, PG, 5, 0);
		else if (i == 7)
			check("private file page 7 (dirty)", priv + i * PG, PG, 5, 1000);
		else
			check("private file page (clean)", priv + i * PG, PG, 4, i * WORDS(PG));
	}
	check("private file mapping at offset", priv_off, 8 * PG, 4, 4 * WORDS(PG));
	/* COW: the file itself never saw the dirty pages. */
	fd = open(priv_path, O_RDONLY);
	if (fd < 0) {
		failf("open %s: %s", priv_path, strerror(errno));
	} else {
		for (i = 0; i < 16; i++) {
			if (pread(fd, page_buf, PG, i * PG) != (ssize_t)PG)
				failf("pread %s page %d", priv_path, i);
			else
				check("private file on disk", page_buf, PG, 4, i * WORDS(PG));
		}
		close(fd);
	}

	check("read-only anon", ro, MiB, 6, 0);
	if (mprotect(hidden, 64 * PG, PROT_READ))
		failf("mprotect hidden: %s", strerror(errno));
	else
		check("data behind PROT_NONE", hidden, 64 * PG, 7, 0);

	for (i = 0; i < 16; i++) {
		if (i == 2)
			check("shared file page 2 (written)", shared + i * PG, PG, 9, 0);
		else
			check("shared file page", shared + i * PG, PG, 8, i * WORDS(PG));
	}
	/* Still shared with the file, both ways. */
	fd = open(shared_path, O_RDWR);
	if (fd < 0) {
		failf("open %s: %s", shared_path, strerror(errno));
	} else {
		if (pread(fd, page_buf, PG, 2 * PG) != (ssize_t)PG)
			failf("pread shared page 2");
		else
			check("shared file page 2 on disk", page_buf, PG, 9, 0);
		fill(shared + 5 * PG, PG, 10, 0);
		if (pread(fd, page_buf, PG, 5 * PG) != (ssize_t)PG)
			failf("pread shared page 5");
		else
			check("write through MAP_SHARED reaches the file", page_buf, PG, 10, 0);
		fill(page_buf, PG, 11, 0);
		if (pwrite(fd, page_buf, PG, 6 * PG) != (ssize_t)PG)
			failf("pwrite shared page 6");
		else
			check("write to the file shows in MAP_SHARED", shared + 6 * PG, PG, 11, 0);
		close(fd);
	}
	check("MAP_SHARED anonymous", shanon, MiB, 12, 0);

	for (i = 0; i < 4096; i++)
		if (stack_arr[i] != pattern64(13, i)) {
			failf("stack word %d", i);
			break;
		}
	check(".data", data_arr, sizeof(data_arr), 14, 0);
	if (strcmp(data_str, "cryo .data string survives"))
		failf(".rodata string");
	check(".bss", bss_arr, sizeof(bss_arr), 15, 0);

	/* The heap still works: free everything, allocate again. */
	for (i = 0; i < 1000; i++)
		free(small[i]);
	free(heap);
	heap = malloc(heap_len);
	if (!heap)
		failf("malloc after restore");
	else
		fill(heap, heap_len, 16, 0);

	return prog_finish();
}
