/* secretenv.h: secrets that arrive in the environment, kept out of it.
 *
 * A process's environment is readable by others: /proc/PID/environ shows
 * the bytes the process started with (whatever unsetenv does later) to
 * every process of the same user, and children inherit it.  sluice-worker
 * therefore takes each secret variable it uses (the server URLs and every
 * variable a *_env key of the configuration names) out of its environment
 * at start-up, before it forks: the value moves into this module's store,
 * the variable is unset, and its original bytes are overwritten in place.
 * Readers ask sl_secretenv_get, which answers from the store first and
 * from the environment otherwise (so programs that never take anything
 * behave as before).
 *
 * The store is process-wide, written only by sl_secretenv_take (called by
 * the master before forking, and again on reload) and read-only in the
 * worker processes, which inherit it. */
#ifndef SL_SECRETENV_H
#define SL_SECRETENV_H

/* Moves the variable name (if set) into the store, unsets it and overwrites
 * every "name=..." string of the process's original environment block with
 * NUL bytes.  Taking a name twice keeps the first value. */
void sl_secretenv_take(const char *name);

/* The value of name: from the store if taken, else getenv.  NULL if unset.
 * The string stays valid for the life of the process (store) or until the
 * environment changes (getenv). */
const char *sl_secretenv_get(const char *name);

/* Marks the process not dumpable (prctl PR_SET_DUMPABLE 0): processes of
 * the same user can no longer read its /proc files (environ, mem, fds) or
 * ptrace it; inherited by forked children, reset by execve.  Returns 0, or
 * -1 (errno set). */
int sl_secretenv_protect(void);

#endif
