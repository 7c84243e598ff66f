/* err.h: error detail carried in a caller-supplied buffer.
 *
 * Every fallible function in sluice takes an `sl_err *` (which may be NULL
 * when the caller does not care) and returns -1 (or NULL) after filling it
 * with a code and a message that names what failed: the system or library
 * call, the key or field involved, and the underlying reason. */
#ifndef SL_ERR_H
#define SL_ERR_H

enum sl_err_code {
    SL_OK = 0,
    SL_EINVAL,   /* bad input: usage, arguments, malformed data */
    SL_ECONFIG,  /* configuration file or environment is wrong */
    SL_EDECODE,  /* wire data could not be decoded or failed validation */
    SL_EREDIS,   /* Redis unreachable or returned an error */
    SL_EPG,      /* PostgreSQL unreachable or returned an error */
    SL_EIO,      /* a system call failed */
    SL_ENOTFOUND,/* the thing asked for does not exist */
    SL_EJOB,     /* a job handler reported failure (retried while attempts remain) */
    SL_EPERMANENT,/* a job failed in a way retrying cannot fix (a webhook's 4xx,
                     a checksum mismatch): the job is dead at once */
};

typedef struct sl_err {
    int code;       /* one of enum sl_err_code */
    char msg[512];  /* human-readable, one line, NUL-terminated */
} sl_err;

/* Fills err (if not NULL) and returns -1, so callers can `return sl_err_set(...)`. */
int sl_err_set(sl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to an existing message, keeping its code; returns -1. */
int sl_err_wrap(sl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Resets err to SL_OK with an empty message. */
void sl_err_clear(sl_err *err);

#endif
