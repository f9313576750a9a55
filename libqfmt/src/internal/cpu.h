/* CPU features (cpu.c, the one file that runs CPUID). */
#ifndef QFMT_INTERNAL_CPU_H
#define QFMT_INTERNAL_CPU_H

#ifndef QFMT_STATIC_LINKING_ONLY
#define QFMT_STATIC_LINKING_ONLY
#endif
#include "qfmt.h" /* qfmt__cpu_has_avx2 */

#endif
