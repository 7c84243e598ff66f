/* stats.h: the order statistics every benchmark prints. */
#ifndef SL_BENCH_STATS_H
#define SL_BENCH_STATS_H

#include <stddef.h>

/* Sorts v[0..n) ascending. */
void bench_sort(double *v, size_t n);

/* Sorts v[0..n) (n >= 1) and returns its median (the mean of the middle
 * two for an even n). */
double bench_median(double *v, size_t n);

#endif
