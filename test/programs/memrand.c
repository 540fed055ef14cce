/*
 * memrand: a random address space, built from a seed, that must come back
 * exactly: every byte, protection and VMA flag of every page.
 *
 * Usage: memrand DIR [SEED] (or MEMRAND_SEED in the environment; default 1).
 *
 * From the seed it makes 16..40 regions of random kinds (private anonymous,
 * private and shared mappings of a file, private and shared mappings of a
 * memfd, shared anonymous memory), fills random pages of each with
 * seed-derived data, then works on them at random: mremap (grow, shrink,
 * move), munmap of single pages (holes), mprotect of ranges, madvise
 * (DONTFORK, WIPEONFORK, DONTDUMP, SEQUENTIAL, RANDOM, DONTNEED), mlock,
 * rewrites. Then it forks a child that shares it all copy-on-write; after the
 * fork parent and child each write private pages of their own, and the child
 * writes pages of the shared regions (which the parent must see); for some
 * seeds the child forks a grandchild that does the same below it.
 * MREMAP_DONTUNMAP moves anonymous memory and leaves its old range empty.
 *
 * Every page's expected state (mapped or not, perms as /proc/self/maps shows
 * them, the data it holds, locked, DONTFORK, WIPEONFORK) is kept while doing
 * it, and the VmFlags of every page are snapshotted before READY. On SIGUSR1
 * the parent checks its pages (data read through /proc/self/mem, so that
 * PROT_NONE pages are read too and nothing is changed), writes a marker into
 * one page of each shared region and wakes the child, which checks its own
 * pages and the markers (and so on down), and exits 0 or 1. SIGUSR2: one byte is flipped first.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096UL
#define MAXREG 64 /* 16..40 made, more split off by MREMAP_DONTUNMAP */
#define MAXPG 24

enum kind { K_ANON, K_FILE_PRIV, K_FILE_SHARED, K_MEMFD_PRIV, K_MEMFD_SHARED, K_SHM_ANON, K_NKINDS };
static const char *const kind_names[] = { "anon", "file-private", "file-shared", "memfd-private", "memfd-shared", "shared-anon" };

struct page {
	uint8_t mapped;
	uint8_t prot;
	uint8_t locked;
	uint8_t dontfork;
	uint8_t wipeonfork;
	uint64_t tag; /* 0: zeroes; else pattern64(tag, word) */
	char vmflags[160]; /* snapshot before READY */
};

struct region {
	enum kind kind;
	uint8_t *base;
	int npages;
	int fd; /* file or memfd, -1 once closed */
	int pgoff; /* the object's page at base */
	char path[256];
	struct page pg[MAXPG];
};

static struct region regs[MAXREG];
static int nregs;
static uint64_t seed;
static int level; /* 0: the parent, 1: its child, 2: the grandchild */

/* splitmix64 */
static uint64_t rng_state;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
static int below(int n)
{
	return (int)(rnd() % (uint64_t)n);
}

static int is_shared(enum kind k)
{
	return k == K_FILE_SHARED || k == K_MEMFD_SHARED || k == K_SHM_ANON;
}
static int file_backed(enum kind k)
{
	return k == K_FILE_PRIV || k == K_FILE_SHARED || k == K_MEMFD_PRIV || k == K_MEMFD_SHARED;
}

/* What the backing object of a private file/memfd mapping holds at page p. */
static uint64_t file_tag(int r, int p)
{
	return (seed << 20) ^ ((uint64_t)r << 8) ^ (uint64_t)p ^ 0x5000000000000001ull;
}

static void fill_page(uint8_t *p, uint64_t tag)
{
	for (size_t i = 0; i < PG / 8; i++)
		((uint64_t *)p)[i] = tag ? pattern64(tag, i) : 0;
}

/* Writes page i of region r with a fresh tag, if it is mapped and writable. */
static void write_page(struct region *r, int i, uint64_t tag)
{
	struct page *pg = &r->pg[i];

	if (!pg->mapped || !(pg->prot & PROT_WRITE))
		return;
	fill_page(r->base + i * PG, tag);
	pg->tag = tag;
}

static const enum kind private_kinds[] = { K_ANON, K_FILE_PRIV, K_MEMFD_PRIV };

/* A new region; only a private one below the parent (shared ones are the parent's). */
static void make_region(int ri)
{
	struct region *r = &regs[ri];
	int flags, prot = PROT_READ | PROT_WRITE;

	r->kind = level ? private_kinds[below(3)] : (enum kind)below(K_NKINDS);
	r->npages = 1 + below(MAXPG / 2);
	r->fd = -1;
	r->pgoff = 0;
	flags = is_shared(r->kind) ? MAP_SHARED : MAP_PRIVATE;
	if (r->kind == K_FILE_PRIV || r->kind == K_FILE_SHARED) {
		snprintf(r->path, sizeof(r->path), "memrand-%llu-%d-%d.dat", (unsigned long long)seed, level, ri);
		MUST((r->fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	} else if (r->kind == K_MEMFD_PRIV || r->kind == K_MEMFD_SHARED) {
		snprintf(r->path, sizeof(r->path), "memrand-%d", ri);
		MUST((r->fd = memfd_create(r->path, 0)) >= 0);
	}
	if (r->fd >= 0) {
		uint8_t buf[PG];

		/* The object is as large as the region may grow; it is mapped from a
		 * page of it that the seed and the region's number pick. */
		r->pgoff = (int)((seed + (uint64_t)ri * 5) % 4);
		for (int p = 0; p < MAXPG + 4; p++) {
			fill_page(buf, file_tag(ri, p));
			MUST(pwrite(r->fd, buf, PG, (off_t)p * PG) == (ssize_t)PG);
		}
	}
	if (r->fd >= 0)
		MUST((r->base = mmap(NULL, r->npages * PG, prot, flags, r->fd, (off_t)r->pgoff * PG)) != MAP_FAILED);
	else
		MUST((r->base = mmap(NULL, r->npages * PG, prot, flags | MAP_ANONYMOUS, -1, 0)) != MAP_FAILED);
	for (int i = 0; i < r->npages; i++) {
		r->pg[i].mapped = 1;
		r->pg[i].prot = (uint8_t)prot;
		r->pg[i].tag = file_backed(r->kind) ? file_tag(ri, r->pgoff + i) : 0;
	}
	/* Touch some pages; others stay as they are (zero, or the file's). */
	for (int i = 0; i < r->npages; i++)
		if (below(3))
			write_page(r, i, rnd() | 1);
}

/* mremap: grow or shrink (maybe moving); only while no page was cut out. */
static void op_mremap(int ri)
{
	struct region *r = &regs[ri];
	int n = 1 + below(MAXPG), grow = n > r->npages;
	uint8_t *nb;

	for (int i = 0; i < r->npages; i++)
		if (!r->pg[i].mapped || r->pg[i].prot != r->pg[0].prot || r->pg[i].locked || r->pg[i].dontfork ||
		    r->pg[i].wipeonfork)
			return;
	/* Shared memory cannot grow past its object (shared anon has no more);
	 * and shrunk, what its lost pages held would be forgotten here. */
	if (is_shared(r->kind) && (grow ? r->kind == K_SHM_ANON : n < r->npages))
		return;
	int fl = below(2) ? MREMAP_MAYMOVE : 0;

	/* Moved at the same size: anonymous memory may leave its old range behind, empty. */
	if (fl && n == r->npages && r->kind == K_ANON && nregs < MAXREG)
		fl |= MREMAP_DONTUNMAP;
	nb = mremap(r->base, r->npages * PG, n * PG, fl);
	if (nb == MAP_FAILED) {
		/* Could not grow in place, or the range is more than one VMA now. */
		MUST(errno == ENOMEM || errno == EFAULT);
		return;
	}
	if (fl & MREMAP_DONTUNMAP) {
		struct region *old = &regs[nregs++];

		*old = *r;
		old->fd = -1;
		old->pgoff = 0;
		for (int i = 0; i < old->npages; i++)
			old->pg[i].tag = 0;
	}
	r->base = nb;
	for (int i = r->npages; i < n; i++) {
		r->pg[i] = r->pg[0];
		r->pg[i].tag = file_backed(r->kind) ? file_tag(ri, r->pgoff + i) : 0;
	}
	for (int i = n; i < r->npages; i++)
		memset(&r->pg[i], 0, sizeof(r->pg[i]));
	r->npages = n;
}

static void range(struct region *r, int *a, int *b)
{
	*a = below(r->npages);
	*b = *a + 1 + below(r->npages - *a);
}

static void op(int ri)
{
	struct region *r = &regs[ri];
	int a, b;

	range(r, &a, &b);
	switch (below(9)) {
	case 0: /* a hole, never the first page (the region's address) */
		if (r->npages > 2 && a > 0) {
			MUST(munmap(r->base + a * PG, PG) == 0);
			memset(&r->pg[a], 0, sizeof(r->pg[a]));
		}
		break;
	case 1: {
		static const int prots[] = { PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC };
		int prot = prots[below(4)];

		for (int i = a; i < b; i++)
			if (!r->pg[i].mapped)
				return;
		if (mprotect(r->base + a * PG, (b - a) * PG, prot)) {
			MUST(errno == EACCES); /* PROT_EXEC on a noexec mount */
			return;
		}
		for (int i = a; i < b; i++)
			r->pg[i].prot = (uint8_t)prot;
		break;
	}
	case 2: {
		static const int advs[] = { MADV_DONTFORK, MADV_WIPEONFORK, MADV_DONTDUMP, MADV_SEQUENTIAL, MADV_RANDOM, MADV_DONTNEED };
		int adv = advs[below(6)];

		for (int i = a; i < b; i++)
			if (!r->pg[i].mapped || (adv == MADV_DONTNEED && r->pg[i].locked))
				return;
		if (adv == MADV_WIPEONFORK && r->kind != K_ANON)
			return;
		MUST(madvise(r->base + a * PG, (b - a) * PG, adv) == 0);
		for (int i = a; i < b; i++) {
			if (adv == MADV_DONTFORK)
				r->pg[i].dontfork = 1;
			if (adv == MADV_WIPEONFORK)
				r->pg[i].wipeonfork = 1;
			/* Private pages go back to the object's; shared ones keep theirs. */
			if (adv == MADV_DONTNEED && !is_shared(r->kind))
				r->pg[i].tag = file_backed(r->kind) ? file_tag(ri, r->pgoff + i) : 0;
		}
		break;
	}
	case 3:
		/* mlock of PROT_NONE fails, leaving the range locked all the same. */
		for (int i = a; i < b; i++)
			if (!r->pg[i].mapped || r->pg[i].prot == PROT_NONE)
				return;
		MUST(mlock(r->base + a * PG, (b - a) * PG) == 0);
		for (int i = a; i < b; i++)
			r->pg[i].locked = 1;
		break;
	case 4:
		op_mremap(ri);
		break;
	case 5:
		if (r->fd >= 0) {
			close(r->fd);
			r->fd = -1;
		}
		break;
	default:
		for (int i = a; i < b; i++)
			write_page(r, i, rnd() | 1);
	}
}

/* The shared-region writes the child makes after the fork; the parent replays them (apply = 0). */
static void child_shared_writes(int lvl, int apply)
{
	rng_state = seed ^ 0xC0FFEEull ^ ((uint64_t)(lvl - 1) << 40);
	for (int ri = 0; ri < nregs; ri++) {
		struct region *r = &regs[ri];

		if (!is_shared(r->kind))
			continue;
		for (int i = 0; i < r->npages; i++) {
			uint64_t tag = rnd() | 1;
			struct page *pg = &r->pg[i];

			if (below(3) || !pg->mapped || !(pg->prot & PROT_WRITE) || pg->dontfork)
				continue;
			if (apply)
				fill_page(r->base + i * PG, tag);
			pg->tag = tag;
		}
	}
}

/* After restore: the parent writes a marker into the first writable page of each shared region the child has too. */
static void markers(int apply)
{
	for (int ri = 0; ri < nregs; ri++) {
		struct region *r = &regs[ri];

		if (!is_shared(r->kind))
			continue;
		for (int i = 0; i < r->npages; i++) {
			struct page *pg = &r->pg[i];

			if (!pg->mapped || !(pg->prot & PROT_WRITE) || pg->dontfork)
				continue;
			pg->tag = (seed << 16) ^ ((uint64_t)ri << 4) ^ 0x3000000000000007ull;
			if (apply)
				fill_page(r->base + i * PG, pg->tag);
			break;
		}
	}
}

/* /proc/self/smaps, as a list of VMAs with perms and VmFlags. */
struct vma {
	uintptr_t start, end;
	char perms[5];
	char path[128];
	char flags[160];
};
static struct vma vmas[4096];
static int nvmas;

/* Flags the kernel sets by itself, or that depend on how a mapping was made rather than on what it is. */
static int flag_kept(const char *f)
{
	static const char *const skip[] = { "ac", "sd", "mg", "nr", "hg", "nh", "um", "uw", "ui", "ht", "me" };

	for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
		if (!strcmp(f, skip[k]))
			return 0;
	return 1;
}

static void read_smaps(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/smaps", "r");

	MUST(f != NULL);
	nvmas = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[5], path[128];
		int n;

		path[0] = 0;
		n = sscanf(line, "%lx-%lx %4s %*s %*s %*s %127[^\n]", &s, &e, perms, path);
		if (n >= 3 && strchr(line, '-') < strchr(line, ' ')) {
			MUST(nvmas < (int)(sizeof(vmas) / sizeof(vmas[0])));
			vmas[nvmas].start = s;
			vmas[nvmas].end = e;
			snprintf(vmas[nvmas].perms, sizeof(vmas[nvmas].perms), "%s", perms);
			snprintf(vmas[nvmas].path, sizeof(vmas[nvmas].path), "%s", path);
			vmas[nvmas].flags[0] = 0;
			nvmas++;
		} else if (!strncmp(line, "VmFlags:", 8) && nvmas) {
			char *out = vmas[nvmas - 1].flags;

			for (char *t = strtok(line + 8, " \n"); t; t = strtok(NULL, " \n"))
				if (flag_kept(t) && strlen(out) + strlen(t) + 2 < sizeof(vmas[0].flags)) {
					strcat(out, t);
					strcat(out, " ");
				}
		}
	}
	fclose(f);
}

static struct vma *vma_at(const uint8_t *p)
{
	for (int i = 0; i < nvmas; i++)
		if ((uintptr_t)p >= vmas[i].start && (uintptr_t)p < vmas[i].end)
			return &vmas[i];
	return NULL;
}

static int has_flag(const char *flags, const char *f)
{
	char want[8];

	snprintf(want, sizeof(want), "%s ", f);
	for (const char *s = flags; (s = strstr(s, want)); s++)
		if (s == flags || s[-1] == ' ')
			return 1;
	return 0;
}

static void snapshot(void)
{
	read_smaps();
	for (int ri = 0; ri < nregs; ri++)
		for (int i = 0; i < regs[ri].npages; i++) {
			struct vma *v = vma_at(regs[ri].base + i * PG);

			snprintf(regs[ri].pg[i].vmflags, sizeof(regs[ri].pg[i].vmflags), "%s", v ? v->flags : "");
		}
}

/* A hole of one region may hold a page of another made since. */
static int mapped_elsewhere(const uint8_t *at)
{
	for (int ri = 0; ri < nregs; ri++)
		if (at >= regs[ri].base && at < regs[ri].base + regs[ri].npages * PG && regs[ri].pg[(at - regs[ri].base) / PG].mapped)
			return 1;
	return 0;
}

static void check(int memfd_fd)
{
	static uint8_t buf[PG];
	static const char *const whos[] = { "parent", "child", "grandchild" };
	const char *who = whos[level];

	read_smaps();
	for (int ri = 0; ri < nregs; ri++) {
		struct region *r = &regs[ri];

		for (int i = 0; i < r->npages; i++) {
			struct page *pg = &r->pg[i];
			uint8_t *at = r->base + i * PG;
			struct vma *v = vma_at(at);
			char perms[5];

			if (!pg->mapped) {
				if (v && !mapped_elsewhere(at))
					failf("%s: region %d (%s) page %d at %p: mapped (%s), was a hole", who, ri,
					      kind_names[r->kind], i, (void *)at, v->perms);
				continue;
			}
			if (!v) {
				failf("%s: region %d (%s) page %d at %p: not mapped", who, ri, kind_names[r->kind], i,
				      (void *)at);
				continue;
			}
			snprintf(perms, sizeof(perms), "%c%c%c%c", pg->prot & PROT_READ ? 'r' : '-',
				 pg->prot & PROT_WRITE ? 'w' : '-', pg->prot & PROT_EXEC ? 'x' : '-',
				 is_shared(r->kind) ? 's' : 'p');
			if (strcmp(perms, v->perms))
				failf("%s: region %d (%s) page %d: perms %s, want %s", who, ri, kind_names[r->kind], i,
				      v->perms, perms);
			if (has_flag(v->flags, "lo") != pg->locked)
				failf("%s: region %d (%s) page %d: locked %d, want %d", who, ri, kind_names[r->kind], i,
				      has_flag(v->flags, "lo"), pg->locked);
			if (has_flag(v->flags, "dc") != pg->dontfork || has_flag(v->flags, "wf") != pg->wipeonfork)
				failf("%s: region %d (%s) page %d: VmFlags \"%s\", want dontfork %d wipeonfork %d", who, ri,
				      kind_names[r->kind], i, v->flags, pg->dontfork, pg->wipeonfork);
			if (strcmp(v->flags, pg->vmflags))
				failf("%s: region %d (%s) page %d: VmFlags \"%s\", were \"%s\"", who, ri, kind_names[r->kind],
				      i, v->flags, pg->vmflags);
			if ((r->kind == K_FILE_PRIV || r->kind == K_FILE_SHARED) && !strstr(v->path, r->path))
				failf("%s: region %d page %d maps \"%s\", want .../%s", who, ri, i, v->path, r->path);
			if ((r->kind == K_MEMFD_PRIV || r->kind == K_MEMFD_SHARED) && !strstr(v->path, "/memfd:memrand-"))
				failf("%s: region %d page %d maps \"%s\", want a memfd", who, ri, i, v->path);
			if (pread(memfd_fd, buf, PG, (off_t)(uintptr_t)at) != (ssize_t)PG) {
				failf("%s: region %d page %d: /proc/self/mem: %s", who, ri, i, strerror(errno));
				continue;
			}
			for (size_t w = 0; w < PG / 8; w++) {
				uint64_t want = pg->tag ? pattern64(pg->tag, w) : 0, got = ((uint64_t *)buf)[w];

				if (got != want) {
					failf("%s: region %d (%s) page %d word %zu: %016llx, want %016llx (tag %llx)", who, ri,
					      kind_names[r->kind], i, w, (unsigned long long)got, (unsigned long long)want,
					      (unsigned long long)pg->tag);
					break;
				}
			}
		}
	}
}

/* The child's view right after the fork. */
static void forked(void)
{
	for (int ri = 0; ri < nregs; ri++)
		for (int i = 0; i < regs[ri].npages; i++) {
			struct page *pg = &regs[ri].pg[i];

			if (!pg->mapped)
				continue;
			if (pg->dontfork) {
				memset(pg, 0, sizeof(*pg));
				continue;
			}
			pg->locked = 0; /* mlock is not inherited */
			if (pg->wipeonfork)
				pg->tag = 0;
		}
}

/* Private pages of one's own after the fork. */
static void own_writes(uint64_t salt)
{
	rng_state = seed ^ salt;
	for (int ri = 0; ri < nregs; ri++) {
		if (is_shared(regs[ri].kind))
			continue;
		for (int i = 0; i < regs[ri].npages; i++)
			if (!below(4))
				write_page(&regs[ri], i, rnd() | 1);
	}
}

/*
 * Below the parent: a few regions of its own, and ops on private regions only
 * (the shared ones must look alike in every generation for the writes to them
 * to be known everywhere). Runs with `level` still the parent's, so 1 less.
 */
static void own_ops(int gen)
{
	rng_state = seed ^ 0x0B5ull ^ ((uint64_t)gen << 32);
	level = gen;
	for (int n = below(4); n > 0 && nregs < MAXREG; n--)
		make_region(nregs++);
	for (int n = 0; n < 12; n++) {
		int ri = below(nregs);

		if (!is_shared(regs[ri].kind))
			op(ri);
	}
	level = gen - 1;
}

/* Flips one byte of a mapped page (SIGUSR2). */
static void corrupt_one(void)
{
	for (int ri = 0; ri < nregs; ri++)
		for (int i = 0; i < regs[ri].npages; i++)
			if (regs[ri].pg[i].mapped && (regs[ri].pg[i].prot & PROT_WRITE)) {
				regs[ri].base[i * PG + 100] ^= 0x40;
				return;
			}
}

int main(int argc, char **argv)
{
	const char *s = argc > 2 ? argv[2] : getenv("MEMRAND_SEED");
	int pipefd[2], up = -1, mem, corrupt, status, depth;
	pid_t child;
	char c;

	prog_init();
	seed = s ? strtoull(s, NULL, 0) : 1;
	MUST(chdir(prog_dir(argc, argv)) == 0);
	rng_state = seed;
	nregs = 16 + below(25);
	for (int ri = 0; ri < nregs; ri++)
		make_region(ri);
	for (int n = 0; n < nregs * 4; n++)
		op(below(nregs));
	/* One or two generations below; each fork sees it all, and from then on
	 * each keeps its own expectations. */
	rng_state = seed ^ 0xDE97ull;
	depth = 1 + below(2);
	for (level = 0; level < depth; level++) {
		MUST(pipe(pipefd) == 0);
		MUST((child = fork()) >= 0);
		if (child) {
			close(pipefd[1]);
			break;
		}
		close(pipefd[0]);
		if (up >= 0)
			close(up);
		up = pipefd[1];
		forked();
		own_writes(level ? 0x5EC0ull : 0xC41Dull);
		child_shared_writes(level + 1, 1);
		own_ops(level + 1);
		if (level + 1 < depth)
			continue; /* its own child tells the parent when it is done */
		MUST(write(up, "k", 1) == 1);
		close(up);
		child = 0;
		level++;
		break;
	}
	/* The innermost one wrote "k"; each one above passes it on once it knows. */
	if (child) {
		if (level == 0)
			own_writes(0x9A4Eull);
		MUST(read(pipefd[0], &c, 1) == 1);
		close(pipefd[0]);
		for (int l = level + 1; l <= depth; l++)
			child_shared_writes(l, 0);
		if (level > 0) {
			MUST(write(up, "k", 1) == 1);
			close(up);
		}
	}
	snapshot();
	if (level == 0) {
		fprintf(stderr, "memrand seed %llu: %d regions, %d generation(s) below, child %d\n", (unsigned long long)seed,
			nregs, depth, (int)child);
		prog_ready();
	}

	corrupt = wait_for_signal();
	if (corrupt && level == 0)
		corrupt_one();
	if (level > 0)
		markers(0);
	MUST((mem = open("/proc/self/mem", O_RDONLY)) >= 0);
	check(mem);
	if (child) {
		markers(1);
		kill(child, SIGUSR1);
		MUST(waitpid(child, &status, 0) == child);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failf("level %d: its child: status 0x%x", level, status);
	}
	if (level > 0)
		exit(common_fail_count ? 1 : 0);
	return prog_finish();
}
