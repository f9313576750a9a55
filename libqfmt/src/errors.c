#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal/error.h"

const char *qfmt_strerror(qfmt_status s)
{
    switch (s) {
    case QFMT_OK: return "success";
    case QFMT_E_IO: return "input/output error";
    case QFMT_E_NOMEM: return "out of memory";
    case QFMT_E_BAD_MAGIC: return "not a qfmt file (bad magic)";
    case QFMT_E_VERSION: return "unsupported format version or required feature";
    case QFMT_E_CORRUPT: return "corrupt file";
    case QFMT_E_CHECKSUM: return "checksum mismatch";
    case QFMT_E_RANGE: return "value out of range";
    case QFMT_E_NOT_FOUND: return "not found";
    case QFMT_E_UNSUPPORTED: return "unsupported tensor type or codec";
    case QFMT_E_ARG: return "invalid argument";
    case QFMT_E_TYPE: return "metadata value has another type";
    case QFMT_E_STATE: return "call out of order";
    case QFMT_E_EXISTS: return "name already exists";
    }
    return "unknown error";
}

static void copy_trunc(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

void qfmt__clear_error(qfmt_error *err)
{
    if (!err) return;
    memset(err, 0, sizeof *err);
    err->code = QFMT_OK;
    err->offset = QFMT_NO_OFFSET;
}

qfmt_status qfmt__fail(qfmt_error *err, qfmt_status code, int sys_errno, const char *path,
                       const char *tensor, uint64_t offset, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    err->sys_errno = sys_errno;
    memset(err->reserved, 0, sizeof err->reserved);
    err->offset = offset;
    copy_trunc(err->path, sizeof err->path, path);
    copy_trunc(err->tensor, sizeof err->tensor, tensor);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    /* One line, always: a message may quote bytes from a file. */
    for (char *c = err->message; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    return code;
}

/* Messages quote keys and names from the file, which may hold any character: control
 * characters (C0, DEL, and C1 such as U+009B, a terminal's CSI) are written as \xNN, so that
 * a hostile file cannot send escape sequences or line breaks to a terminal or a log. */
const char *qfmt_escape(const void *bytes, size_t len, char *out, size_t cap)
{
    if (!out || cap == 0) return out;
    const unsigned char *s = bytes;
    size_t n = 0;
    for (size_t i = 0; s && i < len; i++) {
        unsigned char c = s[i];
        /* C1 controls are U+0080..U+009F, in UTF-8 the pairs C2 80 .. C2 9F */
        bool c1 = c == 0xC2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F;
        size_t need = c < 0x20 || c == 0x7F ? 4 : c1 ? 8 : 1;
        if (n + need >= cap) break;
        if (c1) {
            n += (size_t)snprintf(out + n, cap - n, "\\xc2\\x%02x", s[i + 1]);
            i++;
        } else if (need == 4) {
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    /* a cut (at cap, or by vsnprintf before) must not leave half a UTF-8 sequence behind */
    size_t k = n, back = 0;
    while (k > 0 && back < 4 && ((unsigned char)out[k - 1] & 0xC0) == 0x80) k--, back++;
    if (k > 0 && ((unsigned char)out[k - 1] & 0x80)) {
        unsigned char lead = (unsigned char)out[k - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (back + 1 < need) n = k - 1;
    }
    out[n] = '\0';
    return out;
}

void qfmt__escape_controls(const char *s, char *out, size_t cap)
{
    qfmt_escape(s, s ? strlen(s) : 0, out, cap);
}

const char *qfmt_error_format(const qfmt_error *e, char *buf, size_t buf_size)
{
    if (!buf || buf_size == 0) return buf;
    buf[0] = '\0';
    if (!e) return buf;
    size_t n = 0;
#define APPEND(...)                                                                         \
    do {                                                                                    \
        if (n < buf_size) {                                                                 \
            int k = snprintf(buf + n, buf_size - n, __VA_ARGS__);                           \
            if (k > 0) n += (size_t)k;                                                      \
        }                                                                                   \
    } while (0)
    char path[4 * sizeof e->path], tensor[4 * sizeof e->tensor];
    if (e->path[0]) {
        qfmt__escape_controls(e->path, path, sizeof path);
        APPEND("%s: ", path);
    }
    if (e->tensor[0]) {
        qfmt__escape_controls(e->tensor, tensor, sizeof tensor);
        APPEND("tensor '%s'%s", tensor, e->offset != QFMT_NO_OFFSET ? " " : ": ");
    }
    if (e->offset != QFMT_NO_OFFSET) APPEND("at byte %" PRIu64 ": ", e->offset);
    char msg[4 * sizeof e->message]; /* a caller's message may quote a file's bytes too */
    qfmt__escape_controls(e->message[0] ? e->message : qfmt_strerror(e->code), msg, sizeof msg);
    APPEND("%s", msg);
#undef APPEND
    return buf;
}
