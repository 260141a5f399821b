/// A C face for RE2 (Debian's libre2-dev), the linear-time regular expression engine that routing
/// rules run on: compile once, match from any thread, free.
#ifndef SWITCHBOARD_CRE2_H
#define SWITCHBOARD_CRE2_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sb_re2 sb_re2;

/// Compiles `pattern` (UTF-8, `length` bytes). `max_memory` bounds the compiled program in bytes.
/// On failure answers NULL and writes RE2's reason, NUL-terminated, into `error`.
sb_re2 *sb_re2_new(const char *pattern, size_t length, int case_insensitive, long long max_memory, char *error, size_t error_size);

/// 1 when `text` (UTF-8, `length` bytes) contains a match, else 0. Time is linear in `length`.
int sb_re2_partial_match(const sb_re2 *re, const char *text, size_t length);

void sb_re2_free(sb_re2 *re);

#ifdef __cplusplus
}
#endif

#endif
