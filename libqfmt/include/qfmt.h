/*
 * qfmt.h - the one public header of libqfmt.
 *
 * qfmt is a file format for model weights (float and block-quantized tensors plus typed
 * metadata). The byte-exact format is in spec/qfmt_format.md; in short:
 *
 *     Header (64 bytes) | tensor data, each aligned | Metadata | Directory | Footer (64 bytes)
 *
 * The header holds the magic, format version, feature bits and alignment; the footer, at the
 * very end, points back to the metadata and directory, which a streaming writer emits after
 * the last tensor. XXH3-64 checksums cover the header, the metadata + directory + footer, and
 * each tensor's stored bytes.
 *
 * Conventions of this API
 *  - Errors are values: every fallible call returns a qfmt_status and, if `err` is not NULL,
 *    fills it with the code, errno, the file, the tensor and the byte offset concerned.
 *  - The library never prints, never aborts or exits, and keeps no global mutable state.
 *  - Thread safety: a reader is immutable after open; any number of threads may call any
 *    reader function on it at once. A writer belongs to one thread at a time. Separate handles
 *    never interfere.
 *  - Free functions accept NULL.
 *  - Structs that can grow (lz4frame.h's LZ4F_INIT_PREFERENCES): every struct a caller fills
 *    and passes in (qfmt_open_opts, qfmt_write_opts, qfmt_quant_opts, qfmt_tensor_desc,
 *    qfmt_st_tensor_desc) ends in `reserved` fields that must be zero. Start from its INIT
 *    macro (QFMT_OPEN_OPTS_INIT, ...), `= {0}` or memset, then set fields by name; the library
 *    rejects non-zero reserved fields with QFMT_E_ARG. A later MINOR version may give reserved
 *    space a meaning, zero always meaning the old behaviour, so such code keeps working.
 *    Structs the library fills (qfmt_error, qfmt_file_info, qfmt_tensor_info, qfmt_st_tensor)
 *    have reserved space too, which it zeroes. Sizes and offsets of public structs change only
 *    with QFMT_VERSION_MAJOR (tests/test_abi.c holds them). qfmt_allocator (ZSTD_customMem's
 *    three fields) and qfmt_value (a tagged union) are complete as they are: no reserved space.
 *  - The reader promises never to read outside the file's bytes, however the file is made.
 */
#ifndef QFMT_H
#define QFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define QFMT_API __attribute__((visibility("default")))
#else
#  define QFMT_API
#endif

/* ---- Versions --------------------------------------------------------------------------- */
#define QFMT_VERSION_MAJOR 0 /* breaks API or ABI */
#define QFMT_VERSION_MINOR 1 /* adds API */
#define QFMT_VERSION_PATCH 0 /* fixes only */
#define QFMT_VERSION_NUMBER (QFMT_VERSION_MAJOR * 10000 + QFMT_VERSION_MINOR * 100 + QFMT_VERSION_PATCH)
#define QFMT_VERSION_STRING "0.1.0"

/* The linked library's QFMT_VERSION_NUMBER / QFMT_VERSION_STRING (catches header mismatch). */
QFMT_API unsigned qfmt_version_number(void);
QFMT_API const char *qfmt_version_string(void);

/* On-disk format version written by this library (spec/qfmt_format.md, "Versioning"). */
#define QFMT_FORMAT_VERSION_MAJOR 1
#define QFMT_FORMAT_VERSION_MINOR 0

/* ---- Limits (also stated in the spec; a reader rejects files beyond them) --------------- */
#define QFMT_HEADER_SIZE 64u
#define QFMT_FOOTER_SIZE 64u
#define QFMT_MAX_DIMS 8u
#define QFMT_MAX_NAME_LEN 1024u      /* tensor name bytes, excluding any terminator */
#define QFMT_MAX_KEY_LEN 256u        /* metadata key bytes */
#define QFMT_MIN_ALIGNMENT 32u
#define QFMT_MAX_ALIGNMENT (1u << 20)
#define QFMT_DEFAULT_ALIGNMENT 64u
#define QFMT_MAX_TENSORS (1u << 24)
#define QFMT_MAX_META_ENTRIES (1u << 24)
#define QFMT_MAX_META_SIZE (1ull << 30)      /* bytes of the metadata section */
#define QFMT_MAX_DIRECTORY_SIZE (1ull << 30) /* bytes of the directory section */
#define QFMT_MAX_ELEMENTS (1ull << 56)       /* elements of one tensor */

/* ---- Errors ----------------------------------------------------------------------------- */
typedef enum {
    QFMT_OK = 0,
    QFMT_E_IO = 1,          /* read/write/open/rename failed; see sys_errno */
    QFMT_E_NOMEM = 2,       /* an allocation failed */
    QFMT_E_BAD_MAGIC = 3,   /* not a qfmt file */
    QFMT_E_VERSION = 4,     /* unknown major format version or required feature */
    QFMT_E_CORRUPT = 5,     /* structure violates the spec */
    QFMT_E_CHECKSUM = 6,    /* a checksum does not match */
    QFMT_E_RANGE = 7,       /* index, size or value out of range */
    QFMT_E_NOT_FOUND = 8,   /* no such tensor or key */
    QFMT_E_UNSUPPORTED = 9, /* tensor type or codec this library cannot decode */
    QFMT_E_ARG = 10,        /* invalid argument from the caller */
    QFMT_E_TYPE = 11,       /* metadata value of another type than asked */
    QFMT_E_STATE = 12,      /* call out of order (e.g. writer already finished) */
    QFMT_E_EXISTS = 13,     /* duplicate tensor name or metadata key */
} qfmt_status; /* ABI: values never change; append only */

/* Static text for a code, never NULL. */
QFMT_API const char *qfmt_strerror(qfmt_status s);

#define QFMT_NO_OFFSET UINT64_MAX

typedef struct qfmt_error {
    qfmt_status code;
    int sys_errno;       /* errno for QFMT_E_IO, else 0 */
    uint64_t offset;     /* byte offset in the file, or QFMT_NO_OFFSET */
    char path[256];      /* file concerned ("" when reading from memory), truncated */
    char tensor[128];    /* tensor concerned, or "", truncated */
    char message[256];   /* what is wrong, one line */
    uint64_t reserved[4]; /* zeroed by the library: room for more context */
} qfmt_error;

/* Formats `e` as one line: "path: tensor 'name' at byte N: message", control characters in
 * every part escaped as by qfmt_escape. Returns buf. */
QFMT_API const char *qfmt_error_format(const qfmt_error *e, char *buf, size_t buf_size);
/* `len` bytes (NUL included) as text safe for a terminal and a log line: control characters
 * (C0, DEL and UTF-8-encoded C1) written as \xNN, everything else as is. Writes at most
 * cap - 1 bytes and a NUL (cut before an escape that would not fit); returns out. For
 * messages that quote bytes from a file. */
QFMT_API const char *qfmt_escape(const void *bytes, size_t len, char *out, size_t cap);

/* ---- Allocation ------------------------------------------------------------------------- */
typedef struct qfmt_allocator {
    void *(*alloc)(void *ctx, size_t size); /* returns NULL on failure */
    void (*free)(void *ctx, void *p);       /* p may be NULL */
    void *ctx;
} qfmt_allocator; /* NULL allocator pointer anywhere means malloc/free */

/* ---- Tensor types and codecs ------------------------------------------------------------ */
/* Ids below 256 are ggml's `enum ggml_type` values, so a tensor can move between a qfmt and
 * a GGUF file by copying bytes; 256 and above are qfmt's own. */
typedef enum {
    QFMT_TYPE_F32 = 0,
    QFMT_TYPE_F16 = 1,
    QFMT_TYPE_Q4_0 = 2,
    QFMT_TYPE_Q4_1 = 3,
    QFMT_TYPE_Q5_0 = 6,
    QFMT_TYPE_Q5_1 = 7,
    QFMT_TYPE_Q8_0 = 8,
    QFMT_TYPE_Q2_K = 10, /* ggml's K types: super-blocks of 256 values */
    QFMT_TYPE_Q3_K = 11,
    QFMT_TYPE_Q4_K = 12,
    QFMT_TYPE_Q5_K = 13,
    QFMT_TYPE_Q6_K = 14,
    QFMT_TYPE_IQ4_NL = 20, /* 4-bit non-linear codebook, blocks of 32 */
    QFMT_TYPE_IQ4_XS = 23, /* the same codebook, super-blocks of 256 */
    QFMT_TYPE_I8 = 24,
    QFMT_TYPE_I16 = 25,
    QFMT_TYPE_I32 = 26,
    QFMT_TYPE_I64 = 27,
    QFMT_TYPE_F64 = 28,
    QFMT_TYPE_BF16 = 30,
    QFMT_TYPE_U8 = 256,
    QFMT_TYPE_BOOL = 257,
    QFMT_TYPE_Q8_Z = 258, /* fp16 s, u8 z, 32 u8 codes: x ~ s*(q - z) */
    QFMT_TYPE_Q4_Z = 259, /* fp16 s, u8 z, 16 bytes of 4-bit codes */
} qfmt_type;
/* Elements per block of the 32-value block types (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl and the
 * z types). The K types and iq4_xs have blocks of QFMT_SUPER_BLOCK_ELEMS: a type's own size is
 * qfmt_type_get_traits(type)->block_elems. */
#define QFMT_BLOCK_ELEMS 32u
#define QFMT_SUPER_BLOCK_ELEMS 256u

typedef struct qfmt_type_traits {
    const char *name;      /* "f32", "bf16", ... */
    uint32_t block_elems;  /* elements per block (1 for plain types) */
    uint32_t block_bytes;  /* bytes per block */
    bool is_float;         /* F32/F16/BF16/F64 */
} qfmt_type_traits;

/* Traits of a type this library knows, or NULL. Static storage. */
QFMT_API const qfmt_type_traits *qfmt_type_get_traits(uint32_t type);
/* Type by name ("f16"), or QFMT_E_NOT_FOUND. */
QFMT_API qfmt_status qfmt_type_from_name(const char *name, uint32_t *type);
/* Bytes of `nelements` elements of `type`: QFMT_E_UNSUPPORTED for an unknown type,
 * QFMT_E_RANGE if nelements is not a whole number of blocks or the size overflows. */
QFMT_API qfmt_status qfmt_type_size(uint32_t type, uint64_t nelements, uint64_t *bytes);

typedef enum {
    QFMT_CODEC_NONE = 0,
    QFMT_CODEC_ZSTD = 1,
} qfmt_codec;

/* XXH3-64 (seed 0) of n bytes: the checksum the format uses, for callers' own records. */
QFMT_API uint64_t qfmt_checksum(const void *data, size_t n);
/* The same over a whole file, read in pieces (memory stays small whatever the file's size). */
QFMT_API qfmt_status qfmt_checksum_file(const char *path, uint64_t *size, uint64_t *checksum,
                                        qfmt_error *err);
/* Opens `path` for reading if it names a regular file, never blocking: a FIFO or a device is
 * opened with O_NONBLOCK and refused (QFMT_E_IO, sys_errno EINVAL; EISDIR for a directory;
 * the message says what it is) before anything could wait on it; O_NONBLOCK is cleared on a
 * regular file. The one way libqfmt opens a caller-named file for reading (qfmt_reader_open,
 * qfmt_st_open and qfmt_checksum_file go through it), here for callers' own files (a
 * tokenizer or config file). On success *fd is a read-only, close-on-exec descriptor the
 * caller closes; on failure *fd is -1 and errno is set as sys_errno. Thread-safe. */
QFMT_API qfmt_status qfmt_file_open_read(const char *path, int *fd, qfmt_error *err);

/* ---- Float conversion ------------------------------------------------------------------- */
/* Converts n values between F32, F16 and BF16 (any pair, including same type), round to
 * nearest even. NaN stays NaN (sign kept, quiet), Inf stays Inf, values beyond the target's
 * range become Inf, subnormals are kept (gradual underflow), never flushed to zero.
 * src and dst must not overlap unless identical with equal element sizes. Unaligned OK. */
QFMT_API qfmt_status qfmt_convert_floats(uint32_t src_type, const void *src, uint32_t dst_type,
                                         void *dst, size_t n);
QFMT_API uint16_t qfmt_f32_to_f16(float f);
QFMT_API float qfmt_f16_to_f32(uint16_t h);
QFMT_API uint16_t qfmt_f32_to_bf16(float f);
QFMT_API float qfmt_bf16_to_f32(uint16_t h);

/* ---- CPU features ----------------------------------------------------------------------- */
#define QFMT_CPU_AVX2 (1u << 0)        /* AVX2 + FMA + F16C, and the OS saves the YMM state */
#define QFMT_CPU_AVX512_VNNI (1u << 1) /* AVX-512 F, BW, VL and VNNI, and the OS saves the
                                          opmask and ZMM state (implies QFMT_CPU_AVX2) */
#define QFMT_CPU_AMX_INT8 (1u << 2)    /* AMX-TILE and AMX-INT8, the OS saves the tile state and
                                          (Linux) lets this process use it: the first call asks
                                          (implies QFMT_CPU_AVX512_VNNI) */
/* The QFMT_CPU_* features of this CPU, ORed. CPUID is asked once per process (the first call);
 * 0 off x86. Thread-safe. Bits are never renumbered; new ones may be added. */
QFMT_API unsigned qfmt_cpu_features(void);

/* ---- Row decoding ----------------------------------------------------------------------- */
/* Decodes n values of one row of a tensor to fp32. src holds the n values' bytes as stored
 * (any alignment); dst holds n floats and must not overlap src. For a block type n is a
 * multiple of its block_elems (src then holds n / block_elems blocks). */
typedef void (*qfmt_row_decode_fn)(const void *src, float *dst, size_t n);

/* The fastest decoder of `type` on this CPU, for F32, F16, BF16 and every block type; NULL for
 * any other type. Every CPU level gives the reference's bits (those of qfmt_dequantize with
 * QFMT_KERNEL_SCALAR, NaN payloads included). The function pointer has static storage and
 * stays valid for the process; it keeps no state and is thread-safe. */
QFMT_API qfmt_row_decode_fn qfmt_row_decoder(uint32_t type);

/* ---- Quantization ---------------------------------------------------------------------- */
typedef enum {
    QFMT_QUALITY_REFERENCE = 0, /* the reference quantizer: ggml's bytes, reproducible */
    QFMT_QUALITY_BEST = 1,      /* searches each block's scale/offset for the least squared
                                   error; never worse than the reference on any block */
} qfmt_quality;

typedef enum {
    QFMT_KERNEL_AUTO = 0,   /* the fastest this CPU supports (CPUID, at run time) */
    QFMT_KERNEL_SCALAR = 1, /* the portable reference code */
    QFMT_KERNEL_AVX2 = 2,   /* x86-64 AVX2+FMA+F16C; same bytes as SCALAR */
} qfmt_kernel;

typedef struct qfmt_quant_opts {
    unsigned threads;     /* 0 or 1: the calling thread only */
    qfmt_quality quality; /* quantize only */
    qfmt_kernel kernel;
    /* quantize only: row_len importance values, one per column (llama.cpp's imatrix:
     * in_sum2 / counts), all finite and >= 0; NULL: none. With importance, each row is
     * quantized by the type's weighted quantizer (ggml's quantize_<type> with quant_weights,
     * for ggml's types; spec: "Importance") and `quality` is not used. */
    const float *importance;
    uint64_t reserved[3]; /* must be zero */
} qfmt_quant_opts; /* NULL: one thread, reference quality, AUTO kernel (= QFMT_QUANT_OPTS_INIT) */
#define QFMT_QUANT_OPTS_INIT {0u, QFMT_QUALITY_REFERENCE, QFMT_KERNEL_AUTO, NULL, {0u, 0u, 0u}}

/* Whether `k` can run on this CPU (AUTO and SCALAR always can). */
QFMT_API bool qfmt_kernel_available(qfmt_kernel k);

/* Converts nrows rows of row_len values from src_type (F32, F16 or BF16) to dst_type (any
 * float or block type). dst_size must be the destination type's size for nrows*row_len
 * values. Errors: QFMT_E_RANGE when row_len is not a multiple of the block type's
 * block_elems (32, or 256 for the super-block types), when a value is NaN or infinite (block types only: the message names row and
 * column), or when a block's scale/offset exceeds fp16's range; QFMT_E_UNSUPPORTED for
 * other types. On error dst holds unspecified bytes. */
QFMT_API qfmt_status qfmt_quantize(uint32_t dst_type, void *dst, uint64_t dst_size,
                                   uint32_t src_type, const void *src, uint64_t nrows,
                                   uint64_t row_len, const qfmt_quant_opts *opts, qfmt_error *err);
/* The inverse: src_type any float or block type, dst_type F32, F16 or BF16. */
QFMT_API qfmt_status qfmt_dequantize(uint32_t dst_type, void *dst, uint64_t dst_size,
                                     uint32_t src_type, const void *src, uint64_t nrows,
                                     uint64_t row_len, const qfmt_quant_opts *opts, qfmt_error *err);

/* ---- Metadata values -------------------------------------------------------------------- */
typedef enum {
    QFMT_META_U8 = 0,
    QFMT_META_I8 = 1,
    QFMT_META_U16 = 2,
    QFMT_META_I16 = 3,
    QFMT_META_U32 = 4,
    QFMT_META_I32 = 5,
    QFMT_META_U64 = 6,
    QFMT_META_I64 = 7,
    QFMT_META_F32 = 8,
    QFMT_META_F64 = 9,
    QFMT_META_BOOL = 10,
    QFMT_META_STRING = 11,
    QFMT_META_ARRAY = 12,
} qfmt_meta_type; /* on-disk ids; a value type a reader does not know is kept, opaque */

/* Name of a metadata type ("u32", "string", ...), or "unknown". */
QFMT_API const char *qfmt_meta_type_name(uint32_t type);

/* ---- Reader ----------------------------------------------------------------------------- */
typedef struct qfmt_reader qfmt_reader;

typedef struct qfmt_open_opts {
    const qfmt_allocator *alloc; /* NULL: malloc/free */
    bool verify_checksums;       /* also verify every tensor at open (O(file size)) */
    uint64_t reserved[4];        /* must be zero */
} qfmt_open_opts; /* NULL: the same as QFMT_OPEN_OPTS_INIT */
#define QFMT_OPEN_OPTS_INIT {NULL, false, {0u, 0u, 0u, 0u}}

/* Opens and validates a file (mmap, read-only). Validates header, metadata, directory and
 * their checksums in O(metadata + directory) time; tensor bytes are not touched unless
 * opts->verify_checksums. On failure *out is NULL. Close with qfmt_reader_close. */
QFMT_API qfmt_status qfmt_reader_open(qfmt_reader **out, const char *path,
                                      const qfmt_open_opts *opts, qfmt_error *err);
/* Same over caller memory, which must stay valid and unchanged until close. */
QFMT_API qfmt_status qfmt_reader_open_memory(qfmt_reader **out, const void *data, size_t size,
                                             const qfmt_open_opts *opts, qfmt_error *err);
QFMT_API void qfmt_reader_close(qfmt_reader *r);

typedef struct qfmt_file_info {
    uint16_t version_major, version_minor;
    uint32_t required_features, optional_features;
    uint32_t alignment;
    uint64_t file_size;
    uint64_t tensor_count;
    uint64_t metadata_count;
    uint64_t data_offset, data_size;         /* the tensor data region */
    uint64_t metadata_offset, metadata_size;
    uint64_t directory_offset, directory_size;
    uint64_t header_checksum, index_checksum;
    uint64_t reserved[8];                    /* zeroed by the library */
} qfmt_file_info;
QFMT_API void qfmt_reader_file_info(const qfmt_reader *r, qfmt_file_info *out);
/* The path given at open ("" for memory). Valid until close. */
QFMT_API const char *qfmt_reader_path(const qfmt_reader *r);

typedef struct qfmt_tensor_info {
    const char *name;        /* NUL-terminated, valid until close */
    uint32_t type;           /* qfmt_type; may be a type this library does not know */
    uint32_t codec;          /* qfmt_codec; may be unknown */
    uint32_t ndim;           /* 0 for a scalar */
    uint64_t dims[QFMT_MAX_DIMS]; /* outermost first, as numpy; unused ones are 0 */
    uint64_t nelements;      /* product of dims (1 for a scalar) */
    uint64_t offset;         /* absolute file offset of the stored bytes */
    uint64_t stored_size;    /* bytes in the file */
    uint64_t raw_size;       /* bytes once decoded */
    uint64_t checksum;       /* XXH3-64 of the stored bytes */
    uint64_t reserved[8];    /* zeroed by the library */
} qfmt_tensor_info;

QFMT_API uint64_t qfmt_tensor_count(const qfmt_reader *r);
/* Tensors are indexed 0..count-1 in file order. QFMT_E_RANGE for a bad index. */
QFMT_API qfmt_status qfmt_tensor_get_info(const qfmt_reader *r, uint64_t index,
                                          qfmt_tensor_info *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_tensor_find(const qfmt_reader *r, const char *name, uint64_t *index,
                                      qfmt_error *err);
/* Zero-copy view of an uncompressed tensor of a known type: *data points into the map
 * (aligned to the file's alignment), valid until close. QFMT_E_UNSUPPORTED for a compressed
 * tensor (use qfmt_tensor_read) or an unknown type. Checksums are not verified here. */
QFMT_API qfmt_status qfmt_tensor_view(const qfmt_reader *r, uint64_t index, const void **data,
                                      uint64_t *size, qfmt_error *err);
/* Decodes a tensor (copy or decompress) into dst, which must hold raw_size bytes. Verifies
 * the stored bytes' checksum first when `verify` is true. */
QFMT_API qfmt_status qfmt_tensor_read(const qfmt_reader *r, uint64_t index, void *dst,
                                      uint64_t dst_size, bool verify, qfmt_error *err);
/* Checks one tensor's stored bytes against its checksum (and, for zstd, that the frame
 * decodes to exactly raw_size bytes). */
QFMT_API qfmt_status qfmt_tensor_verify(const qfmt_reader *r, uint64_t index, qfmt_error *err);
/* Whole-file verify: every tensor, and that every padding byte is zero. Uses up to
 * `threads` threads (0: one). On failure err names the first bad tensor in file order. */
QFMT_API qfmt_status qfmt_reader_verify(const qfmt_reader *r, unsigned threads, qfmt_error *err);

/* Metadata, sorted by key (bytewise), indexed 0..count-1. */
typedef struct qfmt_value {
    uint32_t type;              /* qfmt_meta_type, or an unknown id (then opaque) */
    union {
        uint64_t u;             /* U8/U16/U32/U64 and BOOL (0 or 1) */
        int64_t i;              /* I8/I16/I32/I64 */
        double f;               /* F32/F64 */
        struct { const char *ptr; uint64_t len; } str; /* STRING: UTF-8, not NUL-terminated */
        struct { uint32_t elem_type; uint64_t count; } arr; /* ARRAY */
        struct { const void *ptr; uint64_t len; } raw;    /* unknown type: its bytes */
    } v;
} qfmt_value;

QFMT_API uint64_t qfmt_meta_count(const qfmt_reader *r);
/* Key (NUL-terminated, valid until close) and value of entry `index`. */
QFMT_API qfmt_status qfmt_meta_get_entry(const qfmt_reader *r, uint64_t index, const char **key,
                                         qfmt_value *value, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_find(const qfmt_reader *r, const char *key, uint64_t *index,
                                    qfmt_error *err);
/* Typed getters: QFMT_E_NOT_FOUND if absent, QFMT_E_TYPE if stored as another type. */
QFMT_API qfmt_status qfmt_meta_get_u8(const qfmt_reader *r, const char *key, uint8_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_i8(const qfmt_reader *r, const char *key, int8_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_u16(const qfmt_reader *r, const char *key, uint16_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_i16(const qfmt_reader *r, const char *key, int16_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_u32(const qfmt_reader *r, const char *key, uint32_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_i32(const qfmt_reader *r, const char *key, int32_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_u64(const qfmt_reader *r, const char *key, uint64_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_i64(const qfmt_reader *r, const char *key, int64_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_f32(const qfmt_reader *r, const char *key, float *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_f64(const qfmt_reader *r, const char *key, double *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_bool(const qfmt_reader *r, const char *key, bool *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_meta_get_string(const qfmt_reader *r, const char *key, const char **ptr,
                                          uint64_t *len, qfmt_error *err);
/* Arrays: element type and count; QFMT_E_TYPE if `key` is not an array. */
QFMT_API qfmt_status qfmt_meta_get_array(const qfmt_reader *r, const char *key, uint32_t *elem_type,
                                         uint64_t *count, qfmt_error *err);
/* Element `i` of an array (QFMT_E_RANGE past the end). Strings: O(1). */
QFMT_API qfmt_status qfmt_meta_array_get(const qfmt_reader *r, const char *key, uint64_t i,
                                         qfmt_value *out, qfmt_error *err);
/* Arrays of strings, the checked way to walk one. *count strings; QFMT_E_TYPE if `key` is not
 * an array of strings (an array of an unknown element type included: the format does not
 * check its Count, which may say 2^64 - 1). The count is bounded by the bytes present (each
 * string takes at least its 8-byte length), so a loop up to it ends within the file's size. */
QFMT_API qfmt_status qfmt_meta_get_string_array(const qfmt_reader *r, const char *key,
                                                uint64_t *count, qfmt_error *err);
/* String `i` of an array of strings: UTF-8 (NUL allowed), not NUL-terminated, valid until
 * close. QFMT_E_TYPE as above, QFMT_E_RANGE past the end. O(log entries). */
QFMT_API qfmt_status qfmt_meta_string_array_get(const qfmt_reader *r, const char *key, uint64_t i,
                                                const char **ptr, uint64_t *len, qfmt_error *err);
/* Copies a whole scalar array into dst as native values of elem_type (which must match the
 * stored one, else QFMT_E_TYPE); dst holds `count` elements (else QFMT_E_RANGE). */
QFMT_API qfmt_status qfmt_meta_array_copy(const qfmt_reader *r, const char *key, uint32_t elem_type,
                                          void *dst, uint64_t count, qfmt_error *err);

/* ---- Writer ----------------------------------------------------------------------------- */
typedef struct qfmt_writer qfmt_writer;

typedef struct qfmt_write_opts {
    const qfmt_allocator *alloc; /* NULL: malloc/free */
    uint32_t alignment;          /* 0: QFMT_DEFAULT_ALIGNMENT; else a power of two in range */
    bool no_fsync;               /* skip fsync (tests, scratch files); not crash-safe */
    uint64_t reserved[4];        /* must be zero */
} qfmt_write_opts; /* NULL: the same as QFMT_WRITE_OPTS_INIT */
#define QFMT_WRITE_OPTS_INIT {NULL, 0u, false, {0u, 0u, 0u, 0u}}

/* Starts writing `path` atomically: bytes go to "<path>.tmp.XXXXXX" in the same directory,
 * which qfmt_writer_finish fsyncs and renames over `path`. Until then `path` is untouched;
 * on any error, or qfmt_writer_free without finish, the temporary file is removed. */
QFMT_API qfmt_status qfmt_writer_create(qfmt_writer **out, const char *path,
                                        const qfmt_write_opts *opts, qfmt_error *err);
/* The temporary file's path while the writer is unfinished (valid until free), else NULL.
 * For a program's own signal handler, which may unlink it on SIGINT/SIGTERM. */
QFMT_API const char *qfmt_writer_temp_path(const qfmt_writer *w);
/* Frees the writer; if not finished, removes the temporary file (path keeps its old file). */
QFMT_API void qfmt_writer_free(qfmt_writer *w);

/* Metadata may be set at any time before finish; keys are unique (QFMT_E_EXISTS). Values are
 * copied. Keys: 1..QFMT_MAX_KEY_LEN bytes of UTF-8 without NUL. */
QFMT_API qfmt_status qfmt_writer_set_value(qfmt_writer *w, const char *key, const qfmt_value *v,
                                           qfmt_error *err); /* scalars and strings */
QFMT_API qfmt_status qfmt_writer_set_u32(qfmt_writer *w, const char *key, uint32_t v, qfmt_error *err);
QFMT_API qfmt_status qfmt_writer_set_u64(qfmt_writer *w, const char *key, uint64_t v, qfmt_error *err);
QFMT_API qfmt_status qfmt_writer_set_i64(qfmt_writer *w, const char *key, int64_t v, qfmt_error *err);
QFMT_API qfmt_status qfmt_writer_set_f32(qfmt_writer *w, const char *key, float v, qfmt_error *err);
QFMT_API qfmt_status qfmt_writer_set_f64(qfmt_writer *w, const char *key, double v, qfmt_error *err);
QFMT_API qfmt_status qfmt_writer_set_bool(qfmt_writer *w, const char *key, bool v, qfmt_error *err);
QFMT_API qfmt_status qfmt_writer_set_string(qfmt_writer *w, const char *key, const char *s,
                                            size_t len, qfmt_error *err); /* UTF-8 */
/* Array of `count` native scalars of elem_type (not STRING/ARRAY). */
QFMT_API qfmt_status qfmt_writer_set_array(qfmt_writer *w, const char *key, uint32_t elem_type,
                                           const void *elems, uint64_t count, qfmt_error *err);
/* Array of strings; lens may be NULL for NUL-terminated strings. */
QFMT_API qfmt_status qfmt_writer_set_string_array(qfmt_writer *w, const char *key,
                                                  const char *const *strs, const size_t *lens,
                                                  uint64_t count, qfmt_error *err);

typedef struct qfmt_tensor_desc {
    const char *name;            /* 1..QFMT_MAX_NAME_LEN bytes UTF-8, no NUL, unique */
    uint32_t type;               /* a type this library knows */
    uint32_t ndim;               /* 0..QFMT_MAX_DIMS */
    uint64_t dims[QFMT_MAX_DIMS];/* outermost first */
    uint32_t codec;              /* QFMT_CODEC_NONE or QFMT_CODEC_ZSTD */
    int zstd_level;              /* 0: zstd's default */
    uint64_t reserved[4];        /* must be zero */
} qfmt_tensor_desc;
#define QFMT_TENSOR_DESC_INIT {NULL, 0u, 0u, {0u}, QFMT_CODEC_NONE, 0, {0u, 0u, 0u, 0u}}

/* Adds a whole tensor: `size` must equal the type's size for the dims. With the zstd codec
 * the tensor is stored uncompressed if compression does not make it smaller. */
QFMT_API qfmt_status qfmt_writer_add_tensor(qfmt_writer *w, const qfmt_tensor_desc *desc,
                                            const void *data, uint64_t size, qfmt_error *err);
/* Streams a tensor in pieces: begin, then append until exactly the tensor's size has been
 * given, then end. With zstd the data is compressed as it streams (kept compressed). */
QFMT_API qfmt_status qfmt_writer_begin_tensor(qfmt_writer *w, const qfmt_tensor_desc *desc,
                                              qfmt_error *err);
QFMT_API qfmt_status qfmt_writer_append(qfmt_writer *w, const void *data, size_t size,
                                        qfmt_error *err);
QFMT_API qfmt_status qfmt_writer_end_tensor(qfmt_writer *w, qfmt_error *err);

/* Writes metadata, directory and footer, fsyncs, renames over the final path and fsyncs
 * the directory. After it (success or not) only qfmt_writer_free may be called. Failing
 * before the rename, it leaves `path` untouched; only the directory's fsync comes after it:
 * then QFMT_E_IO says the complete file is in place but perhaps not yet durable.
 *
 * Failures while writing: QFMT_E_NOMEM from a call that wrote nothing (set_*, begin_tensor,
 * add_tensor) leaves the writer usable, so the call may be made again. Any I/O error, and
 * QFMT_E_NOMEM from append or end_tensor (zstd, mid-tensor), ends the writer: the temporary
 * file is removed at once and later calls return QFMT_E_STATE. */
QFMT_API qfmt_status qfmt_writer_finish(qfmt_writer *w, qfmt_error *err);

/* ---- Import: safetensors --------------------------------------------------------------- */
/* A hardened safetensors reader (8-byte little-endian header length, JSON header, data).
 * Checks at open: header length at most QFMT_ST_MAX_HEADER and inside the file, a JSON
 * object, every entry's dtype, shape and data_offsets well-formed, sizes matching
 * dtype x shape without overflow, offsets inside the data, no two tensors overlapping,
 * no duplicate names. Tensors are zero-copy views into the mapped file. */
#define QFMT_ST_MAX_HEADER (100ull << 20)

typedef struct qfmt_st_file qfmt_st_file;

typedef struct qfmt_st_tensor {
    const char *name;      /* NUL-terminated, valid until close */
    const char *dtype;     /* as written: "F32", "BF16", ... */
    uint32_t type;         /* the qfmt type holding these bytes as they are */
    uint32_t ndim;
    uint64_t dims[QFMT_MAX_DIMS];
    uint64_t nelements;
    const void *data;      /* little-endian values, valid until close; not aligned */
    uint64_t size;
    uint64_t offset;       /* absolute file offset of data */
    uint64_t reserved[8];  /* zeroed by the library */
} qfmt_st_tensor;

QFMT_API qfmt_status qfmt_st_open(qfmt_st_file **out, const char *path,
                                  const qfmt_allocator *alloc, qfmt_error *err);
QFMT_API qfmt_status qfmt_st_open_memory(qfmt_st_file **out, const void *data, size_t size,
                                         const qfmt_allocator *alloc, qfmt_error *err);
QFMT_API void qfmt_st_close(qfmt_st_file *f);
/* Tensors in order of their data offsets. */
QFMT_API uint64_t qfmt_st_count(const qfmt_st_file *f);
QFMT_API qfmt_status qfmt_st_get(const qfmt_st_file *f, uint64_t index, qfmt_st_tensor *out,
                                 qfmt_error *err);
QFMT_API qfmt_status qfmt_st_find(const qfmt_st_file *f, const char *name, uint64_t *index,
                                  qfmt_error *err);
/* Tells the system the tensor's pages will not be needed again (they are dropped from this
 * process's memory and re-read from the file if touched). For a converter that walks a large
 * file once with bounded memory. No-op for memory opened with qfmt_st_open_memory. */
QFMT_API void qfmt_st_release(const qfmt_st_file *f, uint64_t index);
/* A "__metadata__" string value, or NULL. Valid until close. */
QFMT_API const char *qfmt_st_metadata(const qfmt_st_file *f, const char *key);
/* Size of the whole file and of its JSON header. */
QFMT_API uint64_t qfmt_st_file_size(const qfmt_st_file *f);

/* ---- JSON: the one policy for every JSON text read --------------------------------------- */
/* Every JSON text the project reads (safetensors headers, config.json, tokenizer.json,
 * generation_config.json, model.safetensors.index.json) passes this check before it is parsed,
 * at every site alike. The files come from Python's json and Rust's serde_json; the parser
 * here (cJSON) reads some texts differently, so a file could mean one model to qfmt and another
 * to transformers. Such texts are refused rather than guessed at. Refused:
 *  - anything outside RFC 8259: comments, single quotes, a byte order mark, trailing commas,
 *    bare words, numbers off the RFC grammar (leading zeros, "+1", ".5", "1.", hex, NaN),
 *    whitespace other than space, tab, LF and CR, bytes after the value (whitespace aside);
 *  - strings that are not valid UTF-8 (RFC 3629: no overlong forms, no encoded surrogates,
 *    nothing above U+10FFFF), hold a raw control character (< 0x20), an invalid escape, or a
 *    \u surrogate escape that is not a high one followed by a low one;
 *  - NUL anywhere: a raw NUL byte (cJSON ends a string there, or skips it between tokens) or an
 *    escaped \u0000, in keys and values;
 *  - two keys in one object that are equal once unescaped ("a" and "\u0061" included): cJSON's
 *    lookup finds the first, Python's json keeps the last; the message names the key (control
 *    characters escaped) and gives both byte offsets, err->offset being the second one's;
 *  - nesting deeper than QFMT_JSON_MAX_DEPTH arrays and objects, and texts longer than
 *    QFMT_JSON_MAX_SIZE bytes (callers may have smaller limits: QFMT_ST_MAX_HEADER).
 * Any JSON value is accepted at the top; the caller checks it is the object it wants.
 *
 * text: `len` bytes, need not be NUL-terminated. offset: the file offset of text[0] (8 for a
 * safetensors header, 0 for a JSON file), added to every offset reported. path: the file named
 * in err->path (may be NULL). Returns QFMT_OK, QFMT_E_CORRUPT with err->offset at the first
 * offending byte (QFMT_NO_OFFSET for a text over the size limit), QFMT_E_NOMEM, or QFMT_E_ARG
 * (text NULL with len > 0). Time is linear in len except the duplicate check, n log n in an
 * object's keys; memory is at most 8 bytes per key of the open objects, freed before return.
 * Thread-safe (no state). */
#define QFMT_JSON_MAX_DEPTH 128u
#define QFMT_JSON_MAX_SIZE (256ull << 20)
QFMT_API qfmt_status qfmt_json_check(const char *text, size_t len, uint64_t offset,
                                     const char *path, qfmt_error *err);

/* ---- Export: safetensors --------------------------------------------------------------- */
/* A streaming, atomic safetensors writer: the header (every tensor's name, dtype, shape and
 * data offsets, plus "__metadata__": {"format": "pt"}) goes out at begin, then the tensors'
 * bytes in the order given, in pieces of any size, then commit. As qfmt_writer does, it writes
 * "<path>.tmp.XXXXXX" beside `path` and renames it over `path` only once complete and fsynced;
 * on any error, or qfmt_st_writer_free without a successful commit, the temporary file is
 * removed and `path` keeps what it held. The file reads back with qfmt_st_open. Data offsets
 * start 8-aligned (the header is padded with spaces). A writer belongs to one thread. */
typedef struct qfmt_st_writer qfmt_st_writer;

typedef struct qfmt_st_tensor_desc {
    const char *name;             /* 1..QFMT_MAX_NAME_LEN bytes of UTF-8 without NUL, unique,
                                     not "__metadata__" */
    uint32_t type;                /* a type with a safetensors dtype (qfmt_st_dtype_name) */
    uint32_t ndim;                /* 0..QFMT_MAX_DIMS */
    uint64_t dims[QFMT_MAX_DIMS]; /* outermost first */
    uint64_t reserved[4];         /* must be zero */
} qfmt_st_tensor_desc;
#define QFMT_ST_TENSOR_DESC_INIT {NULL, 0u, 0u, {0u}, {0u, 0u, 0u, 0u}}

/* The safetensors dtype of a qfmt type ("F32", "BF16", "I64", "BOOL", ...), or NULL when
 * safetensors has none (block types among them). Static storage. */
QFMT_API const char *qfmt_st_dtype_name(uint32_t type);

/* Checks the tensor list (QFMT_E_ARG: bad name, ndim or reserved field; QFMT_E_EXISTS: a
 * duplicate name; QFMT_E_UNSUPPORTED: a type without a dtype; QFMT_E_RANGE: sizes beyond
 * 2^53 bytes, what safetensors' JSON can state exactly), creates the temporary file and writes
 * the header. The list is not kept: it may be freed after the call. On failure *out is NULL
 * and nothing is left on disk. alloc NULL: malloc/free. */
QFMT_API qfmt_status qfmt_st_writer_begin(qfmt_st_writer **out, const char *path,
                                          const qfmt_st_tensor_desc *tensors, size_t count,
                                          const qfmt_allocator *alloc, qfmt_error *err);
/* Appends `size` bytes of tensor data (little-endian values, tensors in the order given to
 * begin, back to back). QFMT_E_ARG, with nothing written, for bytes past the last tensor's
 * end (the writer stays usable). An I/O error (QFMT_E_IO, err->offset where the file stopped
 * growing) ends the writer: the temporary file is removed, later calls give QFMT_E_STATE. */
QFMT_API qfmt_status qfmt_st_writer_write(qfmt_st_writer *w, const void *data, size_t size,
                                          qfmt_error *err);
/* Checks that every byte was given (else QFMT_E_STATE), fsyncs, closes, renames over `path`
 * and fsyncs its directory. After it (success or not) only qfmt_st_writer_free may be called.
 * A failure before the rename leaves `path` untouched; QFMT_E_IO from the directory's fsync,
 * the one step after it, means the complete file is in place but perhaps not yet durable. */
QFMT_API qfmt_status qfmt_st_writer_commit(qfmt_st_writer *w, qfmt_error *err);
/* The temporary file's path until commit or failure (valid until free), else NULL. */
QFMT_API const char *qfmt_st_writer_temp_path(const qfmt_st_writer *w);
/* Frees the writer; without a successful commit, removes the temporary file. NULL: no-op. */
QFMT_API void qfmt_st_writer_free(qfmt_st_writer *w);

#ifdef __cplusplus
}
#endif
#endif /* QFMT_H */

/* ---- GGUF files (llama.cpp / ggml) ------------------------------------------------------ */
/* A hardened reader and an atomic writer of GGUF, the llama.cpp / ggml model file (ggml's
 * docs/gguf.md, ggml/src/gguf.cpp), little-endian only:
 *
 *     "GGUF" | u32 version | u64 tensor_count | u64 kv_count | kv pairs | tensor infos |
 *     zero padding to general.alignment | tensor data, each tensor at an aligned offset
 *
 * A kv pair is a key (a GGUF string: u64 length, bytes, no NUL), a u32 value type and the
 * value; an ARRAY is a u32 element type, a u64 count and the elements. A tensor info is a name
 * (a GGUF string), u32 n_dims, n_dims x u64 ne (ne[0] innermost: a numpy / PyTorch shape
 * [rows, cols] is ne = {cols, rows}), a u32 ggml type (qfmt_type ids below 256 are ggml's) and
 * a u64 offset relative to the start of the data section.
 *
 * The reader (qfmt_gguf_open) takes versions 2 and 3 (1, newer ones and a byte-swapped one, as
 * a big-endian file has: QFMT_E_UNSUPPORTED; 0: QFMT_E_CORRUPT; another magic or an empty file:
 * QFMT_E_BAD_MAGIC) and refuses with QFMT_E_CORRUPT, before it allocates
 * anything for them, counts and lengths the file's bytes cannot hold (each kv pair takes at
 * least 14 bytes, each tensor info 25, each string-array element 8, each value its width).
 * Besides, it refuses with QFMT_E_CORRUPT what ggml refuses:
 *  - an empty key, two kv pairs with one key, a value or element type beyond 12, an empty
 *    tensor name, two tensors with one name;
 *  - general.alignment of a type other than u32, or not a power of two;
 *  - n_dims above 4 (QFMT_GGUF_MAX_DIMS), a dimension beyond INT64_MAX, an element count
 *    beyond INT64_MAX (unless a dimension is 0), a known type's ne[0] that is not a multiple of
 *    its block_elems, a byte size beyond 64 bits;
 *  - a tensor offset that is not a multiple of the alignment or not exactly where ggml's layout
 *    puts it: the first tensor at 0, each next one at the end of the one before rounded up to
 *    the alignment (so tensors follow each other in info order and never overlap; padding
 *    bytes are not checked); a data section (when there are tensors) or tensor data that would
 *    pass the end of the file;
 * and, stricter than ggml: keys and names that are not UTF-8 (RFC 3629) or hold a NUL, keys
 * longer than QFMT_GGUF_MAX_KEY_LEN (the spec's limit) and names longer than QFMT_MAX_NAME_LEN
 * bytes, a bool (scalar or array element) other than 0 or 1, a tensor type id above 255.
 * QFMT_E_UNSUPPORTED: an array of arrays (the spec allows them, ggml reads none), an alignment
 * beyond QFMT_GGUF_MAX_ALIGNMENT, more than QFMT_GGUF_MAX_KV pairs or QFMT_GGUF_MAX_TENSORS
 * tensors. String values are bytes as stored: neither UTF-8 nor the absence of NUL is checked.
 * A tensor of a type id this library does not know (qfmt_type_get_traits NULL) is listed with
 * QFMT_GGUF_TENSOR_UNKNOWN_TYPE, size 0 and data NULL: its size cannot be computed, so the
 * layout check resumes after it (the next tensor need only be aligned and not before it).
 * Zero dimensions are allowed, as in ggml: such a tensor is empty (size 0). n_dims 0 is read
 * as ggml reads it, a single element (ndim 0, ne {1, 1, 1, 1}).
 *
 * Open costs O(file's metadata) time (sorting keys and names: n log n) and memory linear in
 * the metadata's size (an entry per kv pair and tensor, 8 bytes per string-array element, a
 * copy of every key and name); tensor data are never read at open nor copied: they are views
 * into the read-only map (or the caller's memory). A reader is immutable after open: any
 * number of threads may use one at once. Every pointer it hands out is valid until close. */
#ifndef QFMT_H_GGUF
#define QFMT_H_GGUF

#ifdef __cplusplus
extern "C" {
#endif

#define QFMT_GGUF_VERSION 3u              /* written; 2 and 3 are read */
#define QFMT_GGUF_DEFAULT_ALIGNMENT 32u   /* without general.alignment (ggml's default) */
#define QFMT_GGUF_MAX_ALIGNMENT (1u << 20) /* read and written */
#define QFMT_GGUF_MAX_DIMS 4u             /* GGML_MAX_DIMS */
#define QFMT_GGUF_MAX_KEY_LEN 65535u      /* key bytes (the spec's 2^16 - 1) */
#define QFMT_GGUF_MAX_NAME_LEN 63u        /* tensor name bytes the writer accepts (ggml's
                                             GGML_MAX_NAME - 1); the reader takes up to
                                             QFMT_MAX_NAME_LEN */
#define QFMT_GGUF_MAX_KV (1u << 20)
#define QFMT_GGUF_MAX_TENSORS (1u << 24)

/* Value types, as on disk (not the qfmt_meta_type ids). */
typedef enum {
    QFMT_GGUF_UINT8 = 0,
    QFMT_GGUF_INT8 = 1,
    QFMT_GGUF_UINT16 = 2,
    QFMT_GGUF_INT16 = 3,
    QFMT_GGUF_UINT32 = 4,
    QFMT_GGUF_INT32 = 5,
    QFMT_GGUF_FLOAT32 = 6,
    QFMT_GGUF_BOOL = 7,   /* one byte, 0 or 1 */
    QFMT_GGUF_STRING = 8, /* u64 length + bytes */
    QFMT_GGUF_ARRAY = 9,  /* u32 element type + u64 count + elements */
    QFMT_GGUF_UINT64 = 10,
    QFMT_GGUF_INT64 = 11,
    QFMT_GGUF_FLOAT64 = 12,
} qfmt_gguf_type;

/* ggml's name of a value type ("u8", "str", "arr", ...), or "unknown". Static storage. */
QFMT_API const char *qfmt_gguf_type_name(uint32_t type);

typedef struct qfmt_gguf qfmt_gguf;

typedef struct qfmt_gguf_kv {
    const char *key;     /* NUL-terminated copy, valid until close */
    size_t key_len;
    uint32_t type;       /* qfmt_gguf_type of the value; QFMT_GGUF_ARRAY for an array */
    uint32_t elem_type;  /* an array's element type; otherwise equal to type */
    uint64_t count;      /* an array's elements; a STRING's length in bytes; else 1 */
    const uint8_t *data; /* the value's bytes in the file, little-endian, unaligned: a scalar's
                            bytes, a string's bytes (after its length), an array's elements
                            (after its type and count; strings there each with their length) */
    uint64_t size;       /* bytes at data */
    uint64_t offset;     /* file offset of data */
    uint64_t reserved[4]; /* zeroed by the library */
} qfmt_gguf_kv;

#define QFMT_GGUF_TENSOR_UNKNOWN_TYPE 1u /* qfmt_gguf_tensor.flags: size and data unknown */

typedef struct qfmt_gguf_tensor {
    const char *name;    /* NUL-terminated copy, valid until close */
    size_t name_len;
    uint32_t type;       /* ggml type id (< 256); maybe one this library does not know */
    uint32_t ndim;       /* n_dims as stored, 0..4 */
    uint64_t ne[QFMT_GGUF_MAX_DIMS]; /* ne[0] innermost; those past ndim are 1 */
    uint64_t nelements;  /* product of ne (0 if a dimension is 0) */
    uint64_t offset;     /* absolute file offset of the data: data_offset + the stored offset */
    uint64_t size;       /* qfmt_type_size(type, nelements); 0 for an unknown type */
    const void *data;    /* offset's byte in the map, aligned like the file; NULL for an unknown
                            type; valid until close */
    uint32_t flags;      /* QFMT_GGUF_TENSOR_UNKNOWN_TYPE */
    uint64_t reserved[4]; /* zeroed by the library */
} qfmt_gguf_tensor;

/* Opens and checks a file (through qfmt_file_open_read's checks, then mmap read-only). On
 * failure *out is NULL and err says why: path, tensor, byte offset, message. */
QFMT_API qfmt_status qfmt_gguf_open(qfmt_gguf **out, const char *path, qfmt_error *err);
/* The same over caller memory, not copied: it must stay valid and unchanged until close. */
QFMT_API qfmt_status qfmt_gguf_open_memory(qfmt_gguf **out, const void *data, size_t size,
                                           qfmt_error *err);
QFMT_API void qfmt_gguf_close(qfmt_gguf *g);
QFMT_API uint32_t qfmt_gguf_version(const qfmt_gguf *g);
QFMT_API uint32_t qfmt_gguf_alignment(const qfmt_gguf *g); /* general.alignment, or 32 */
/* Where the data section starts: after the tensor infos, rounded up to the alignment when
 * there are tensors (ggml's rule). */
QFMT_API uint64_t qfmt_gguf_data_offset(const qfmt_gguf *g);
QFMT_API uint64_t qfmt_gguf_file_size(const qfmt_gguf *g);

/* kv pairs in file order, 0..count-1; QFMT_E_RANGE past the end. */
QFMT_API uint64_t qfmt_gguf_kv_count(const qfmt_gguf *g);
QFMT_API qfmt_status qfmt_gguf_kv_get(const qfmt_gguf *g, uint64_t index, qfmt_gguf_kv *out,
                                      qfmt_error *err);
/* The index of `key` (O(log n)), or QFMT_E_NOT_FOUND. */
QFMT_API qfmt_status qfmt_gguf_find_key(const qfmt_gguf *g, const char *key, uint64_t *index,
                                        qfmt_error *err);

/* Typed getters by key. Each checks the stored type, never trusting a caller's idea of it:
 * QFMT_E_NOT_FOUND if absent, QFMT_E_TYPE if the value is of a type the getter does not read
 * (a string, an array or a float for get_u64, ...). Integer reads are exact or refused:
 *  - get_u64 reads every unsigned type, and the signed types when the value is >= 0
 *    (QFMT_E_RANGE for a negative one);
 *  - get_i64 reads every signed type, and the unsigned types when the value is <= INT64_MAX
 *    (QFMT_E_RANGE beyond);
 *  - get_f64 reads FLOAT32 (widened, exact) and FLOAT64, no integer type; NaN and Inf as stored;
 *  - get_bool reads BOOL only.
 * Outputs are written only on success. */
QFMT_API qfmt_status qfmt_gguf_get_u64(const qfmt_gguf *g, const char *key, uint64_t *out,
                                       qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_get_i64(const qfmt_gguf *g, const char *key, int64_t *out,
                                       qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_get_f64(const qfmt_gguf *g, const char *key, double *out,
                                       qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_get_bool(const qfmt_gguf *g, const char *key, bool *out,
                                        qfmt_error *err);
/* A STRING value: *ptr into the map (not NUL-terminated; bytes as stored, which may hold NUL
 * or be invalid UTF-8) and its length. */
QFMT_API qfmt_status qfmt_gguf_get_str(const qfmt_gguf *g, const char *key, const char **ptr,
                                       size_t *len, qfmt_error *err);
/* An ARRAY: its element type and count (QFMT_E_TYPE for any other value). The count is bounded
 * by the file (each element takes at least one byte), so a loop up to it ends. */
QFMT_API qfmt_status qfmt_gguf_get_array(const qfmt_gguf *g, const char *key,
                                         uint32_t *elem_type, uint64_t *count, qfmt_error *err);
/* String `i` of an array of strings, O(1) (offsets are tabled at open): as get_str.
 * QFMT_E_TYPE if `key` is not an array of strings, QFMT_E_RANGE past the end. */
QFMT_API qfmt_status qfmt_gguf_array_str(const qfmt_gguf *g, const char *key, uint64_t i,
                                         const char **ptr, size_t *len, qfmt_error *err);
/* Element `i` of an array of numbers or bools, by the getters' rules above (array_u64 of an
 * INT32 array reads elements >= 0, ...). QFMT_E_TYPE for an array of strings or of another
 * kind, QFMT_E_RANGE past the end or for a value the rules refuse. */
QFMT_API qfmt_status qfmt_gguf_array_u64(const qfmt_gguf *g, const char *key, uint64_t i,
                                         uint64_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_array_i64(const qfmt_gguf *g, const char *key, uint64_t i,
                                         int64_t *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_array_f64(const qfmt_gguf *g, const char *key, uint64_t i,
                                         double *out, qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_array_bool(const qfmt_gguf *g, const char *key, uint64_t i,
                                          bool *out, qfmt_error *err);

/* Tensors in file (info) order, which is also data order; QFMT_E_RANGE past the end. */
QFMT_API uint64_t qfmt_gguf_tensor_count(const qfmt_gguf *g);
QFMT_API qfmt_status qfmt_gguf_tensor_get(const qfmt_gguf *g, uint64_t index,
                                          qfmt_gguf_tensor *out, qfmt_error *err);
/* The index of the tensor `name` (O(log n)), or QFMT_E_NOT_FOUND. */
QFMT_API qfmt_status qfmt_gguf_find_tensor(const qfmt_gguf *g, const char *name, uint64_t *index,
                                           qfmt_error *err);

/* The writer: GGUF version 3, atomic as qfmt_writer is. It writes "<path>.tmp.XXXXXX" beside
 * `path` (created exclusively at create) and renames it over `path` only once complete and
 * fsynced, then fsyncs the directory; on any error, or qfmt_gguf_writer_free without a
 * successful commit, the temporary file is removed and `path` keeps what it held. The layout is
 * ggml's (gguf_write_to_file): the kv pairs in the order set, the tensor infos in the order
 * added, zero padding to the alignment, then each tensor's data followed by zero padding to
 * the alignment; offsets as the reader requires. The alignment is 32 unless general.alignment
 * is set (set_u32, a power of two up to QFMT_GGUF_MAX_ALIGNMENT), which is then written as a
 * kv pair like any other.
 *
 * Metadata and tensor infos are kept in memory until the header goes out; tensor data are
 * never copied. Each tensor's data come either from the pointer given to add_tensor (read at
 * commit, or by a write call that passes that tensor: it must stay valid and unchanged until
 * commit returns), or, when that pointer is NULL, from qfmt_gguf_writer_write calls, which
 * stream the bytes of such tensors in the order they were added, in pieces of any size. The
 * header is written by the first write call (or by commit): after it no kv pair nor tensor
 * may be added (QFMT_E_STATE).
 *
 * Keys: 1..QFMT_GGUF_MAX_KEY_LEN bytes of UTF-8 without NUL, unique (QFMT_E_EXISTS). Tensor
 * names: 1..QFMT_GGUF_MAX_NAME_LEN bytes of UTF-8 without NUL, unique (QFMT_E_EXISTS). At most
 * QFMT_GGUF_MAX_KV pairs and QFMT_GGUF_MAX_TENSORS tensors (QFMT_E_RANGE), what the reader
 * reads. String values: any bytes. Failures: QFMT_E_ARG, QFMT_E_EXISTS, QFMT_E_UNSUPPORTED or QFMT_E_RANGE
 * for a bad call, and QFMT_E_NOMEM from a set or add call, leave the writer usable (nothing was
 * recorded); an I/O error, and QFMT_E_NOMEM from write or commit (the header's buffer), end it:
 * the temporary file is removed at once and later calls give QFMT_E_STATE. A writer belongs to
 * one thread at a time. */
typedef struct qfmt_gguf_writer qfmt_gguf_writer;

/* Creates the temporary file. On failure *out is NULL and nothing is left on disk. */
QFMT_API qfmt_status qfmt_gguf_writer_create(qfmt_gguf_writer **out, const char *path,
                                             qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_writer_set_u32(qfmt_gguf_writer *w, const char *key, uint32_t v,
                                              qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_writer_set_i32(qfmt_gguf_writer *w, const char *key, int32_t v,
                                              qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_writer_set_u64(qfmt_gguf_writer *w, const char *key, uint64_t v,
                                              qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_writer_set_i64(qfmt_gguf_writer *w, const char *key, int64_t v,
                                              qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_writer_set_f32(qfmt_gguf_writer *w, const char *key, float v,
                                              qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_writer_set_f64(qfmt_gguf_writer *w, const char *key, double v,
                                              qfmt_error *err);
QFMT_API qfmt_status qfmt_gguf_writer_set_bool(qfmt_gguf_writer *w, const char *key, bool v,
                                               qfmt_error *err);
/* `len` bytes of s (any bytes; NULL allowed when len is 0). */
QFMT_API qfmt_status qfmt_gguf_writer_set_str(qfmt_gguf_writer *w, const char *key,
                                              const char *s, size_t len, qfmt_error *err);
/* A scalar of any fixed-size type (not STRING or ARRAY): `value` points to one native value of
 * it (uint8_t for UINT8, ..., bool for BOOL, double for FLOAT64). */
QFMT_API qfmt_status qfmt_gguf_writer_set_value(qfmt_gguf_writer *w, const char *key,
                                                uint32_t type, const void *value, qfmt_error *err);
/* An array of `count` native values of elem_type (any fixed-size type; bool for BOOL), copied.
 * count may be 0 (data then may be NULL). */
QFMT_API qfmt_status qfmt_gguf_writer_set_array(qfmt_gguf_writer *w, const char *key,
                                                uint32_t elem_type, const void *data,
                                                uint64_t count, qfmt_error *err);
/* An array of strings, copied: strs[i] of lens[i] bytes (lens NULL: NUL-terminated strings). */
QFMT_API qfmt_status qfmt_gguf_writer_set_str_array(qfmt_gguf_writer *w, const char *key,
                                                    const char *const *strs, const size_t *lens,
                                                    uint64_t count, qfmt_error *err);
/* Declares a tensor: a type this library knows with an id below 256 (else
 * QFMT_E_UNSUPPORTED), ndim 1..4, ne[0] innermost, each dimension and the element count at most
 * INT64_MAX, ne[0] a multiple of the type's block_elems, and `size` equal to qfmt_type_size
 * (else QFMT_E_ARG). data: the tensor's bytes, kept as a pointer (not copied) until commit, or
 * NULL to give them through qfmt_gguf_writer_write. */
QFMT_API qfmt_status qfmt_gguf_writer_add_tensor(qfmt_gguf_writer *w, const char *name,
                                                 uint32_t type, uint32_t ndim, const uint64_t *ne,
                                                 const void *data, uint64_t size, qfmt_error *err);
/* Streams `size` bytes of the tensors declared with data NULL, in their order (the header and
 * any tensors before them given by pointer go out first). QFMT_E_ARG, with nothing written,
 * for bytes beyond what those tensors still lack (the writer stays usable). */
QFMT_API qfmt_status qfmt_gguf_writer_write(qfmt_gguf_writer *w, const void *data, size_t size,
                                            qfmt_error *err);
/* Writes what is left (header, tensors given by pointer), checks that every streamed byte was
 * given (else QFMT_E_STATE), fsyncs, renames over `path` and fsyncs its directory. After it
 * (success or not) only qfmt_gguf_writer_free may be called. A failure before the rename
 * leaves `path` untouched; QFMT_E_IO from the directory's fsync, the one step after it, means
 * the complete file is in place but perhaps not yet durable. */
QFMT_API qfmt_status qfmt_gguf_writer_commit(qfmt_gguf_writer *w, qfmt_error *err);
/* The temporary file's path until commit or failure (valid until free), else NULL. */
QFMT_API const char *qfmt_gguf_writer_temp_path(const qfmt_gguf_writer *w);
/* Frees the writer; without a successful commit, removes the temporary file. NULL: no-op. */
QFMT_API void qfmt_gguf_writer_free(qfmt_gguf_writer *w);

#ifdef __cplusplus
}
#endif
#endif /* QFMT_H_GGUF */

/* GGUF, unstable part (see QFMT_STATIC_LINKING_ONLY below; its own guard, like that part's). */
#if defined(QFMT_STATIC_LINKING_ONLY) && !defined(QFMT_H_GGUF_STATIC_LINKING_ONLY)
#define QFMT_H_GGUF_STATIC_LINKING_ONLY
#ifdef __cplusplus
extern "C" {
#endif
struct qfmt_io;
/* qfmt_gguf_open_memory allocating through `alloc` (NULL: malloc/free). */
QFMT_API qfmt_status qfmt_gguf_open_memory_alloc(qfmt_gguf **out, const void *data, size_t size,
                                                 const qfmt_allocator *alloc, qfmt_error *err);
/* qfmt_gguf_writer_create allocating through `alloc` and doing its file I/O through `io`
 * (NULL: malloc/free, qfmt_io_posix). The table is copied; io->ctx must stay valid until free. */
QFMT_API qfmt_status qfmt_gguf_writer_create_io(qfmt_gguf_writer **out, const char *path,
                                                const qfmt_allocator *alloc,
                                                const struct qfmt_io *io, qfmt_error *err);
#ifdef __cplusplus
}
#endif
#endif

/* ==== QFMT_STATIC_LINKING_ONLY: unstable, for tests and tools ================================
 * Defining QFMT_STATIC_LINKING_ONLY before including qfmt.h shows the declarations below (cf.
 * ZSTD_STATIC_LINKING_ONLY in zstd.h). They are NOT part of the stable API or ABI: any release,
 * a MINOR or PATCH one included, may change or remove them, so use them only from programs built
 * and shipped with this exact library version (the project's tests, fuzzers and tools). They are
 * exported from the shared library and the static one alike, with the qfmt_ prefix. This part
 * has its own guard, so qfmt.h may be included first without the macro and again with it. */
#if defined(QFMT_STATIC_LINKING_ONLY) && !defined(QFMT_H_STATIC_LINKING_ONLY)
#define QFMT_H_STATIC_LINKING_ONLY

#include <sys/types.h> /* mode_t, ssize_t */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The I/O table (SQLite's VFS in miniature) ------------------------------------------- */
/* Every system call the writers (qfmt_writer, qfmt_st_writer) make on their files, with POSIX
 * conventions (-1 and errno on failure, ssize_t byte counts, short writes allowed). A writer
 * copies the table it is given at creation; the public create functions give qfmt_io_posix, the
 * real calls. Tests give their own to fail the n-th call (EIO, ENOSPC), shorten writes or
 * interrupt them (EINTR). The library keeps no mutable table: there is nothing global to patch. */
typedef struct qfmt_io {
    int (*open)(void *ctx, const char *path, int flags, mode_t mode);
    ssize_t (*write)(void *ctx, int fd, const void *p, size_t n);
    int (*fsync)(void *ctx, int fd);
    int (*close)(void *ctx, int fd);
    int (*rename)(void *ctx, const char *from, const char *to);
    int (*unlink)(void *ctx, const char *path);
    void *ctx; /* passed to every call */
} qfmt_io;

/* The real POSIX calls (open, write, fsync, close, rename, unlink); ctx unused. */
QFMT_API extern const qfmt_io qfmt_io_posix;

/* qfmt_writer_create doing its file I/O through `io` (NULL: qfmt_io_posix). The table is
 * copied; io->ctx must stay valid until qfmt_writer_free. */
QFMT_API qfmt_status qfmt_writer_create_io(qfmt_writer **out, const char *path,
                                           const qfmt_write_opts *opts, const qfmt_io *io,
                                           qfmt_error *err);

/* qfmt_st_writer_begin doing its file I/O through `io` (NULL: qfmt_io_posix); the same rules. */
QFMT_API qfmt_status qfmt_st_writer_begin_io(qfmt_st_writer **out, const char *path,
                                             const qfmt_st_tensor_desc *tensors, size_t count,
                                             const qfmt_allocator *alloc, const qfmt_io *io,
                                             qfmt_error *err);

/* ---- Block-quantization kernels per CPU level (bit-identity tests, fuzzers, benches) ------ */
/* A quantizer converts nb blocks of block_elems finite floats and returns how many it did:
 * fewer means block [return] cannot be stored (a scale or offset beyond fp16's range). A
 * dequantizer decodes nb blocks (any bytes, NaN/Inf scales included). No alignment is needed.
 * A row quantizer with importance converts one row of n values (a multiple of block_elems)
 * with w[0..n) the columns' importance, and returns the blocks done as a quantizer does. */
typedef size_t (*qfmt_quantize_blocks_fn)(const float *x, uint8_t *y, size_t nb);
typedef void (*qfmt_dequantize_blocks_fn)(const uint8_t *y, float *x, size_t nb);
typedef size_t (*qfmt_quantize_row_weighted_fn)(const float *x, uint8_t *y, size_t n, const float *w);

typedef struct qfmt_quant_kernels {
    uint32_t type;
    uint32_t block_elems;
    uint32_t block_bytes;
    qfmt_quantize_blocks_fn quantize_ref;      /* the reference: defines the bytes */
    qfmt_dequantize_blocks_fn dequantize_ref;
    qfmt_quantize_blocks_fn quantize_best;     /* error-minimising search, never worse per block
                                                  (the reference itself where the type's
                                                  reference already searches: K types, iq4) */
    qfmt_quantize_blocks_fn quantize_avx2;     /* same bytes as quantize_ref; NULL off x86 and */
    qfmt_dequantize_blocks_fn dequantize_avx2; /* for types without. Call only if
                                                  qfmt_cpu_features() & QFMT_CPU_AVX2 */
    qfmt_quantize_row_weighted_fn quantize_weighted; /* one row with importance */
} qfmt_quant_kernels;

/* The kernels of a block type (static storage), or NULL for any other type. */
QFMT_API const qfmt_quant_kernels *qfmt_quant_kernels_get(uint32_t type);

/* ---- UTF-8 ------------------------------------------------------------------------------- */
/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. With
 * allow_nul false a NUL byte also fails. The check every name, key and message goes through. */
QFMT_API bool qfmt_utf8_valid(const uint8_t *s, uint64_t n, bool allow_nul);

#ifdef __cplusplus
}
#endif
#endif /* QFMT_STATIC_LINKING_ONLY */
