/* CPU features (cpu.c, the one file that runs CPUID). */
#ifndef QFMT_INTERNAL_CPU_H
#define QFMT_INTERNAL_CPU_H

/* qfmt_cpu_features() & QFMT_CPU_AVX2, as an int. */
int qfmt__cpu_has_avx2(void);

#endif
