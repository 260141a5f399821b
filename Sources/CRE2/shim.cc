// RE2 behind the C functions of include/cre2.h.
#include "cre2.h"

#include <re2/re2.h>
#include <cstring>
#include <new>

struct sb_re2 {
    re2::RE2 *re;
};

extern "C" sb_re2 *sb_re2_new(const char *pattern, size_t length, int case_insensitive, long long max_memory, char *error, size_t error_size) {
    re2::RE2::Options options;
    options.set_encoding(re2::RE2::Options::EncodingUTF8);
    options.set_case_sensitive(case_insensitive == 0);
    options.set_log_errors(false);
    if (max_memory > 0) options.set_max_mem(max_memory);
    re2::RE2 *re = new (std::nothrow) re2::RE2(re2::StringPiece(pattern, length), options);
    if (re == nullptr) {
        if (error_size > 0) std::strncpy(error, "out of memory", error_size - 1), error[error_size - 1] = 0;
        return nullptr;
    }
    if (!re->ok()) {
        if (error_size > 0) {
            std::strncpy(error, re->error().c_str(), error_size - 1);
            error[error_size - 1] = 0;
        }
        delete re;
        return nullptr;
    }
    sb_re2 *handle = new (std::nothrow) sb_re2{re};
    if (handle == nullptr) delete re;
    return handle;
}

extern "C" int sb_re2_partial_match(const sb_re2 *re, const char *text, size_t length) {
    return re2::RE2::PartialMatch(re2::StringPiece(text, length), *re->re) ? 1 : 0;
}

extern "C" void sb_re2_free(sb_re2 *re) {
    if (re == nullptr) return;
    delete re->re;
    delete re;
}
