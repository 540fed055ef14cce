/* fanotify: group A (FAN_CLASS_NOTIF, non-blocking, events opened O_RDONLY)
 * marks a bind mount DIR/mnt (FAN_OPEN, FAN_CLOSE_NOWRITE), the file
 * DIR/mnt/watched (FAN_MODIFY, FAN_CLOSE_WRITE; FAN_OPEN in its ignored mask,
 * surviving modification). Group B (FAN_REPORT_DFID_NAME) marks the directory
 * DIR/wdir (FAN_CREATE with FAN_ONDIR) and DIR/wdir2 with an ignore-only mark
 * made with FAN_MARK_IGNORE.
 * Checks after restore: the fdinfo of both groups reads the same as before
 * (flags, event flags, every mark with its masks and mark flags); A reports
 * opening DIR/mnt/other, writing DIR/mnt/watched and closing both, and not the
 * ignored opening of watched; B reports a file and a directory created in wdir,
 * by name. The bind mount is undone at the end.
 * With "filesystem" after DIR, group A also marks the whole filesystem.
 * SIGUSR2: remove FAN_MODIFY from the file's mark first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/mount.h>
#include <sys/stat.h>

static char fdinfo_a[4096], fdinfo_b[4096];

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "flags:" line and the sorted "fanotify" lines of our fd's fdinfo. */
static void fdinfo_of(int fd, char *out, size_t size)
{
	char path[64], buf[4096], *lines[64];
	int n = 0, len;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	MUST(f != NULL);
	while (n < 64 && fgets(buf, sizeof(buf), f))
		if (!strncmp(buf, "flags:", 6) || !strncmp(buf, "fanotify ", 9))
			lines[n++] = strdup(buf);
	fclose(f);
	qsort(lines, n, sizeof(lines[0]), cmp_lines);
	out[0] = 0;
	for (int i = 0; i < n; i++) {
		len = strlen(out);
		snprintf(out + len, size - len, "%s", lines[i]);
		free(lines[i]);
	}
}

static ino_t ino_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : st.st_ino;
}

/* Group A: the masks our own events had, for two inodes. */
static void drain_a(int fa, ino_t ino1, uint64_t *m1, ino_t ino2, uint64_t *m2)
{
	char buf[8192] __attribute__((aligned(8)));
	ssize_t len;

	while ((len = read(fa, buf, sizeof(buf))) > 0) {
		struct fanotify_event_metadata *e = (void *)buf;

		for (; FAN_EVENT_OK(e, len); e = FAN_EVENT_NEXT(e, len)) {
			struct stat st;

			if (e->fd < 0)
				continue;
			if (e->pid == getpid() && !fstat(e->fd, &st)) {
				if (st.st_ino == ino1)
					*m1 |= e->mask;
				if (st.st_ino == ino2)
					*m2 |= e->mask;
			}
			close(e->fd);
		}
	}
}

/* Group B: the masks of the creations of name1 and name2, from the name records. */
static void drain_b(int fb, const char *name1, uint64_t *m1, const char *name2, uint64_t *m2)
{
	char buf[8192] __attribute__((aligned(8)));
	ssize_t len;

	while ((len = read(fb, buf, sizeof(buf))) > 0) {
		struct fanotify_event_metadata *e = (void *)buf;

		for (; FAN_EVENT_OK(e, len); e = FAN_EVENT_NEXT(e, len)) {
			char *p = (char *)e + e->metadata_len;

			while (p < (char *)e + e->event_len) {
				struct fanotify_event_info_fid *fid = (void *)p;

				if (fid->hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
					struct file_handle *h = (void *)fid->handle;
					const char *name = (char *)h->f_handle + h->handle_bytes;

					if (!strcmp(name, name1))
						*m1 |= e->mask;
					if (!strcmp(name, name2))
						*m2 |= e->mask;
				}
				if (fid->hdr.len == 0)
					break;
				p += fid->hdr.len;
			}
		}
	}
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	char mnt[4096], watched[4096], other[4096], wdir[4096], wdir2[4096], p[8192];
	int fa, fb, fd;

	prog_init();
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(watched, sizeof(watched), "%s/mnt/watched", dir);
	snprintf(other, sizeof(other), "%s/mnt/other", dir);
	snprintf(wdir, sizeof(wdir), "%s/wdir", dir);
	snprintf(wdir2, sizeof(wdir2), "%s/wdir2", dir);
	MUST(mkdir(mnt, 0755) == 0 && mkdir(wdir, 0755) == 0 && mkdir(wdir2, 0755) == 0);
	MUST(mount(mnt, mnt, NULL, MS_BIND, NULL) == 0);
	MUST((fd = open(watched, O_CREAT | O_WRONLY, 0644)) >= 0 && close(fd) == 0);
	MUST((fd = open(other, O_CREAT | O_WRONLY, 0644)) >= 0 && close(fd) == 0);

	MUST((fa = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE)) >= 0);
	MUST(fanotify_mark(fa, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN | FAN_CLOSE_NOWRITE, AT_FDCWD, mnt) == 0);
	MUST(fanotify_mark(fa, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD, watched) == 0);
	MUST(fanotify_mark(fa, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_OPEN,
			   AT_FDCWD, watched) == 0);

	MUST((fb = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY)) >= 0);
	MUST(fanotify_mark(fb, FAN_MARK_ADD | FAN_MARK_ONLYDIR, FAN_CREATE | FAN_ONDIR, AT_FDCWD, wdir) == 0);
	MUST(fanotify_mark(fb, FAN_MARK_ADD | FAN_MARK_IGNORE_SURV, FAN_CREATE | FAN_ONDIR, AT_FDCWD, wdir2) == 0);

	/* "filesystem" after DIR: a mark CRIU's images cannot hold (the dump must refuse). */
	if (argc > 2 && !strcmp(argv[2], "filesystem"))
		MUST(fanotify_mark(fa, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CLOSE_WRITE, AT_FDCWD, mnt) == 0);

	/* Whatever the setup itself caused. */
	uint64_t junk = 0;
	drain_a(fa, 0, &junk, 0, &junk);
	drain_b(fb, "", &junk, "", &junk);
	fdinfo_of(fa, fdinfo_a, sizeof(fdinfo_a));
	fdinfo_of(fb, fdinfo_b, sizeof(fdinfo_b));
	prog_ready();
	if (wait_for_signal())
		MUST(fanotify_mark(fa, FAN_MARK_REMOVE, FAN_MODIFY, AT_FDCWD, watched) == 0);

	char now[4096];
	fdinfo_of(fa, now, sizeof(now));
	if (strcmp(now, fdinfo_a))
		failf("group A fdinfo changed: was [%s] now [%s]", fdinfo_a, now);
	fdinfo_of(fb, now, sizeof(now));
	if (strcmp(now, fdinfo_b))
		failf("group B fdinfo changed: was [%s] now [%s]", fdinfo_b, now);

	char c;
	if (read(fa, &c, 1) != -1 || errno != EAGAIN)
		failf("group A: a read with nothing queued does not fail with EAGAIN");
	MUST((fd = open(other, O_RDONLY)) >= 0 && close(fd) == 0);
	MUST((fd = open(watched, O_WRONLY)) >= 0 && write(fd, "x", 1) == 1 && close(fd) == 0);
	uint64_t m_other = 0, m_watched = 0;
	drain_a(fa, ino_of(other), &m_other, ino_of(watched), &m_watched);
	if ((m_other & (FAN_OPEN | FAN_CLOSE_NOWRITE)) != (FAN_OPEN | FAN_CLOSE_NOWRITE))
		failf("mount mark: events 0x%llx for %s, want FAN_OPEN|FAN_CLOSE_NOWRITE", (unsigned long long)m_other, other);
	if ((m_watched & (FAN_MODIFY | FAN_CLOSE_WRITE)) != (FAN_MODIFY | FAN_CLOSE_WRITE))
		failf("file mark: events 0x%llx for %s, want FAN_MODIFY|FAN_CLOSE_WRITE", (unsigned long long)m_watched, watched);
	if (m_watched & FAN_OPEN)
		failf("file mark: opening %s was reported, its ignored mask is gone", watched);

	snprintf(p, sizeof(p), "%s/newfile", wdir);
	MUST((fd = open(p, O_CREAT | O_WRONLY, 0644)) >= 0 && close(fd) == 0);
	snprintf(p, sizeof(p), "%s/newdir", wdir);
	MUST(mkdir(p, 0755) == 0);
	uint64_t m_file = 0, m_dir = 0;
	drain_b(fb, "newfile", &m_file, "newdir", &m_dir);
	if (m_file != FAN_CREATE)
		failf("directory mark: creating newfile gave 0x%llx, want FAN_CREATE", (unsigned long long)m_file);
	if (m_dir != (FAN_CREATE | FAN_ONDIR))
		failf("directory mark: creating newdir gave 0x%llx, want FAN_CREATE|FAN_ONDIR", (unsigned long long)m_dir);

	umount2(mnt, MNT_DETACH);
	return prog_finish();
}
