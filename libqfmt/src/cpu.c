/* CPU feature detection, the one place in libqfmt that asks the processor (cf. xxHash's
 * xxh_x86dispatch.c): qfmt_cpu_features() answers for the kernels' dispatch (dispatch.c) and
 * for the library's users (the model runtime's GEMM levels). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* syscall */
#include <pthread.h>

#include "qfmt.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static unsigned long long xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* Linux lends the AMX tile data state to a process that asks (arch_prctl ARCH_REQ_XCOMP_PERM
 * 0x1023 for XFEATURE_XTILEDATA 18); asking again is harmless. Elsewhere: not used. */
static int amx_permitted(void)
{
#if defined(__linux__) && defined(__x86_64__)
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
    return 0;
#endif
}

/* CPUID leaf 1 ECX: FMA bit 12, OSXSAVE 27, F16C 29; leaf 7 EBX: AVX2 bit 5; and the OS must
 * save the YMM state (XCR0 bits 1 and 2). Read directly: clang 14's __builtin_cpu_supports
 * does not know "f16c". AVX-512: leaf 7 EBX AVX512F bit 16, BW 30, VL 31, ECX VNNI bit 11,
 * and the OS saving the opmask and upper ZMM state (XCR0 bits 5-7) besides YMM. */
static unsigned detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 12)) || !(c & (1u << 27)) || !(c & (1u << 29))) return 0;
    unsigned long long x = xcr0(); /* OSXSAVE is set: xgetbv is allowed */
    if ((x & 6u) != 6u) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(b & (1u << 5))) return 0;
    unsigned f = QFMT_CPU_AVX2;
    const unsigned need_b = (1u << 16) | (1u << 30) | (1u << 31);
    if ((b & need_b) == need_b && (c & (1u << 11)) && (x & 0xE6u) == 0xE6u) f |= QFMT_CPU_AVX512_VNNI;
    /* AMX: leaf 7 EDX AMX-TILE bit 24, AMX-INT8 bit 25, the OS saving the tile state (XCR0
     * bits 17 and 18) and, on Linux, the permission to use tile data asked for this process */
    if ((f & QFMT_CPU_AVX512_VNNI) && (d & (3u << 24)) == (3u << 24) && ((x >> 17) & 3u) == 3u && amx_permitted())
        f |= QFMT_CPU_AMX_INT8;
    return f;
}
#else
static unsigned detect(void) { return 0; }
#endif

/* CPUID traps to the hypervisor on virtual machines (microseconds): ask once per process.
 * The only process-wide state of the library, written once and read-only after. */
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static unsigned cpu_features;
static void cpu_init(void) { cpu_features = detect(); }

unsigned qfmt_cpu_features(void)
{
    pthread_once(&cpu_once, cpu_init);
    return cpu_features;
}
