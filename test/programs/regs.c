/*
 * regs: register state held live across the checkpoint.
 *
 * One asm statement loads patterns into callee-saved and other GP registers
 * (rbx, r8-r10, r12-r15), into ymm8/ymm15 (and zmm8/zmm31/k1 when the CPU has
 * AVX-512), pushes an 80-bit value on the x87 stack, then blocks in a raw
 * rt_sigsuspend syscall *inside the same statement*, and stores every register
 * back to memory after the syscall returns. The checkpoint happens while the
 * task sits in that syscall, so what comes back is what the restore put into
 * the registers. Also checked: MXCSR (round-up, FTZ, DAZ), the x87 control
 * word (round-up, double precision), PKRU, fs_base with a TLS variable, and
 * gs_base.
 */
#include "common.h"

#include <asm/prctl.h>
#include <cpuid.h>
#include <fenv.h>
#include <immintrin.h>
#include <sys/syscall.h>

/* Globals the asm addresses by name (rip-relative). */
__attribute__((used)) uint64_t gp_out[8];
__attribute__((used)) uint64_t ymm_in[8] __attribute__((aligned(64)));
__attribute__((used)) uint64_t ymm_out[8] __attribute__((aligned(64)));
__attribute__((used)) uint64_t zmm_in[16] __attribute__((aligned(64)));
__attribute__((used)) uint64_t zmm_out[16] __attribute__((aligned(64)));
__attribute__((used)) uint64_t k_in, k_out;
__attribute__((used)) unsigned char x87_in[16], x87_out[16];
__attribute__((used)) uint64_t susp_mask; /* the kernel's 8-byte sigset */
__attribute__((used)) long susp_ret;

static const uint64_t gp_want[8] = {
	0x0123456789abcdefull, /* rbx */
	0x1818181818181818ull, /* r8 */
	0x9999999999999999ull, /* r9 */
	0x1010101010101010ull, /* r10 */
	0xc0ffee00c0ffee12ull, /* r12 */
	0xdeadbeef13131313ull, /* r13 */
	0x14141414feedfaceull, /* r14 */
	0xfedcba9876543215ull, /* r15 */
};
static const char *const gp_name[8] = { "rbx", "r8", "r9", "r10", "r12", "r13", "r14", "r15" };

__thread uint64_t tls_var = 1;

#define LOAD_GP                                 \
	"movabs $0x0123456789abcdef, %%rbx\n\t" \
	"movabs $0x1818181818181818, %%r8\n\t"  \
	"movabs $0x9999999999999999, %%r9\n\t"  \
	"movabs $0x1010101010101010, %%r10\n\t" \
	"movabs $0xc0ffee00c0ffee12, %%r12\n\t" \
	"movabs $0xdeadbeef13131313, %%r13\n\t" \
	"movabs $0x14141414feedface, %%r14\n\t" \
	"movabs $0xfedcba9876543215, %%r15\n\t" \
	"fldt x87_in(%%rip)\n\t"

#define SIGSUSPEND                        \
	"mov $130, %%eax\n\t" /* rt_sigsuspend */ \
	"lea susp_mask(%%rip), %%rdi\n\t" \
	"mov $8, %%esi\n\t"               \
	"syscall\n\t"                     \
	"mov %%rax, susp_ret(%%rip)\n\t"

#define STORE_GP                            \
	"fstpt x87_out(%%rip)\n\t"          \
	"mov %%rbx, gp_out(%%rip)\n\t"      \
	"mov %%r8, gp_out+8(%%rip)\n\t"     \
	"mov %%r9, gp_out+16(%%rip)\n\t"    \
	"mov %%r10, gp_out+24(%%rip)\n\t"   \
	"mov %%r12, gp_out+32(%%rip)\n\t"   \
	"mov %%r13, gp_out+40(%%rip)\n\t"   \
	"mov %%r14, gp_out+48(%%rip)\n\t"   \
	"mov %%r15, gp_out+56(%%rip)\n\t"

#define GP_CLOBBERS "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", \
		    "r12", "r13", "r14", "r15", "memory", "cc"

static void hold_gp(void)
{
	asm volatile(LOAD_GP SIGSUSPEND STORE_GP ::: GP_CLOBBERS);
}

static void hold_avx(void)
{
	asm volatile(LOAD_GP
		     "vmovdqu ymm_in(%%rip), %%ymm8\n\t"
		     "vmovdqu ymm_in+32(%%rip), %%ymm15\n\t"
		     SIGSUSPEND STORE_GP
		     "vmovdqu %%ymm8, ymm_out(%%rip)\n\t"
		     "vmovdqu %%ymm15, ymm_out+32(%%rip)\n\t"
		     "vzeroupper\n\t"
		     ::: GP_CLOBBERS, "xmm8", "xmm15");
}

__attribute__((target("avx512f,avx512bw")))
static void hold_avx512(void)
{
	asm volatile(LOAD_GP
		     "vmovdqu64 zmm_in(%%rip), %%zmm8\n\t"
		     "vmovdqu ymm_in+32(%%rip), %%ymm15\n\t"
		     "vmovdqu64 zmm_in+64(%%rip), %%zmm31\n\t"
		     "kmovq k_in(%%rip), %%k1\n\t"
		     SIGSUSPEND STORE_GP
		     "vmovdqu %%ymm15, ymm_out+32(%%rip)\n\t"
		     "vmovdqu64 %%zmm8, zmm_out(%%rip)\n\t"
		     "vmovdqu64 %%zmm31, zmm_out+64(%%rip)\n\t"
		     "kmovq %%k1, k_out(%%rip)\n\t"
		     "vzeroupper\n\t"
		     ::: GP_CLOBBERS, "xmm8", "xmm15", "xmm31", "k1");
	/* ymm8 is the low half of zmm8 (zmm_in starts with ymm_in's ymm8 part). */
	memcpy(ymm_out, zmm_out, 32);
}

static int has_pku(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	return (c >> 4) & 1; /* OSPKE: the OS turned PKRU on */
}

static uint32_t rdpkru(void)
{
	uint32_t eax, edx;

	asm volatile(".byte 0x0f,0x01,0xee" : "=a"(eax), "=d"(edx) : "c"(0));
	return eax;
}

static void wrpkru(uint32_t v)
{
	asm volatile(".byte 0x0f,0x01,0xef" ::"a"(v), "c"(0), "d"(0) : "memory");
}

static uint32_t get_mxcsr(void)
{
	uint32_t v;

	asm volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static void set_mxcsr(uint32_t v)
{
	asm volatile("ldmxcsr %0" ::"m"(v));
}

static uint16_t get_x87cw(void)
{
	uint16_t v;

	asm volatile("fnstcw %0" : "=m"(v));
	return v;
}

static void set_x87cw(uint16_t v)
{
	asm volatile("fldcw %0" ::"m"(v));
}

static unsigned long arch_get(int code)
{
	unsigned long v = 0;

	MUST(syscall(SYS_arch_prctl, code, &v) == 0);
	return v;
}

int main(int argc, char **argv)
{
	int avx = __builtin_cpu_supports("avx");
	int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
	int pku = has_pku();
	uint32_t mxcsr_want, pkru_want = 0;
	uint16_t cw_want;
	unsigned long fs_want, gs_want = 0x7e57000ul;
	uint64_t *tls_addr_want = &tls_var;
	volatile double one = 1.0, three = 3.0, third;
	uint64_t third_bits;
	long double x87_val = -3.14159265358979323846264338327950288L;
	sigset_t m;
	int i, corrupt;

	(void)argc;
	(void)argv;
	prog_init();
	if (!avx)
		printf("SKIP avx: the CPU lacks AVX\n");
	if (!avx512)
		printf("SKIP avx512: the CPU lacks AVX-512F/BW\n");
	if (!pku)
		printf("SKIP pkru: no OSPKE\n");

	for (i = 0; i < 8; i++)
		ymm_in[i] = pattern64(20, i);
	for (i = 0; i < 16; i++)
		zmm_in[i] = i < 4 ? ymm_in[i] : pattern64(21, i);
	k_in = 0xa5a5c3c3f00f0ff0ull;
	memcpy(x87_in, &x87_val, 10);

	/* Rounding up, flush-to-zero and denormals-are-zero in MXCSR; the x87
	 * control word rounding up (fesetround) at double precision. */
	MUST(fesetround(FE_UPWARD) == 0);
	set_mxcsr(get_mxcsr() | 0x8040);
	mxcsr_want = get_mxcsr();
	set_x87cw((get_x87cw() & ~0x0300) | 0x0200);
	cw_want = get_x87cw();

	if (pku) {
		/* Access-disable key 15 (allocated to nobody: harmless). */
		wrpkru(rdpkru() | (1u << 30));
		pkru_want = rdpkru();
	}

	tls_var = 0x7157157157157157ull;
	fs_want = arch_get(ARCH_GET_FS);
	MUST(syscall(SYS_arch_prctl, ARCH_SET_GS, gs_want) == 0);

	wake_mask(&m);
	memcpy(&susp_mask, &m, sizeof(susp_mask));
	prog_ready();

	if (avx512)
		hold_avx512();
	else if (avx)
		hold_avx();
	else
		hold_gp();

	if (susp_ret != -EINTR)
		failf("rt_sigsuspend returned %ld, want -EINTR", susp_ret);
	corrupt = got_usr2;
	if (corrupt) {
		gp_out[4] ^= 1;
		ymm_out[3] ^= 1ull << 63;
		set_mxcsr(0x1f80);
	}

	for (i = 0; i < 8; i++)
		if (gp_out[i] != gp_want[i])
			failf("%s is %#llx, want %#llx", gp_name[i], (unsigned long long)gp_out[i],
			      (unsigned long long)gp_want[i]);
	if (memcmp(x87_out, x87_in, 10))
		failf("x87 st(0) changed");
	if (avx)
		for (i = 0; i < 8; i++)
			if (ymm_out[i] != ymm_in[i])
				failf("ymm%d qword %d is %#llx, want %#llx", i < 4 ? 8 : 15, i % 4,
				      (unsigned long long)ymm_out[i], (unsigned long long)ymm_in[i]);
	if (avx512) {
		/* zmm8's low 256 bits are ymm8, checked above. */
		for (i = 4; i < 8; i++)
			if (zmm_out[i] != zmm_in[i])
				failf("zmm8 qword %d is %#llx, want %#llx", i,
				      (unsigned long long)zmm_out[i], (unsigned long long)zmm_in[i]);
		for (i = 8; i < 16; i++)
			if (zmm_out[i] != zmm_in[i])
				failf("zmm31 qword %d is %#llx, want %#llx", i - 8,
				      (unsigned long long)zmm_out[i], (unsigned long long)zmm_in[i]);
		if (k_out != k_in)
			failf("k1 is %#llx, want %#llx", (unsigned long long)k_out,
			      (unsigned long long)k_in);
	}

	if (get_mxcsr() != mxcsr_want)
		failf("MXCSR is %#x, want %#x", get_mxcsr(), mxcsr_want);
	if (fegetround() != FE_UPWARD)
		failf("fegetround() is %#x, want FE_UPWARD", fegetround());
	third = one / three;
	memcpy(&third_bits, (const void *)&third, sizeof(third_bits));
	if (third_bits != 0x3fd5555555555556ull)
		failf("1.0/3.0 rounded to %#llx, want %#llx (upward)", (unsigned long long)third_bits,
		      0x3fd5555555555556ull);
	if (get_x87cw() != cw_want)
		failf("x87 control word is %#x, want %#x", get_x87cw(), cw_want);
	if (pku && rdpkru() != pkru_want)
		failf("PKRU is %#x, want %#x", rdpkru(), pkru_want);

	if (arch_get(ARCH_GET_FS) != fs_want)
		failf("fs_base is %#lx, want %#lx", arch_get(ARCH_GET_FS), fs_want);
	if (&tls_var != tls_addr_want)
		failf("&tls_var is %p, want %p", (void *)&tls_var, (void *)tls_addr_want);
	if (tls_var != 0x7157157157157157ull)
		failf("tls_var is %#llx", (unsigned long long)tls_var);
	if (arch_get(ARCH_GET_GS) != gs_want)
		failf("gs_base is %#lx, want %#lx", arch_get(ARCH_GET_GS), gs_want);

	return prog_finish();
}
