/* clock.h: the two clocks sluice uses.
 *
 * Wall-clock Unix milliseconds (and microseconds, for latency) go on the wire and into PostgreSQL;
 * monotonic milliseconds measure durations and deadlines. */
#ifndef SL_CLOCK_H
#define SL_CLOCK_H

#include <stdint.h>

int64_t sl_now_ms(void);        /* CLOCK_REALTIME, Unix ms */
int64_t sl_now_us(void);        /* CLOCK_REALTIME, Unix µs */
int64_t sl_monotonic_ms(void);  /* CLOCK_MONOTONIC ms, for durations */
double sl_monotonic_sec(void);  /* CLOCK_MONOTONIC seconds, sub-ms precision */
void sl_sleep_ms(int64_t ms);   /* sleeps, resuming after signals until done */

#endif
