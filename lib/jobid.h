/* jobid.h: job identifiers.
 *
 * sluice makes UUIDv7 ids (RFC 9562: 48-bit Unix ms timestamp, version 7,
 * variant 10, random bits from getrandom(2)); they sort by creation time,
 * which keeps PostgreSQL's primary-key index append-mostly.  Clients may
 * supply their own id instead; sl_jobid_valid says what is accepted. */
#ifndef SL_JOBID_H
#define SL_JOBID_H

#include <stdbool.h>

#define SL_JOBID_MAX 128  /* longest id accepted, in bytes */

/* Writes a new lowercase hyphenated UUIDv7 (36 chars + NUL) into out. */
void sl_jobid_new(char out[37]);

/* A client-supplied id is 1..SL_JOBID_MAX bytes of [A-Za-z0-9._:-]
 * (so it is safe in logs, keys and URLs). */
bool sl_jobid_valid(const char *id);

#endif
