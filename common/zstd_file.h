// zstd-compressed log files (libzstd): compressing a finished file, and reading a file that may
// or may not be compressed as one stream of lines. The pair log's rotated files are compressed
// (gateway/jsonl_pair_sink.cc); sg-compare and sg-load read either kind (docs/pair-log.md).
#pragma once

#include <istream>
#include <memory>
#include <string>

namespace sg {

// True when the file starts with zstd's frame magic (28 b5 2f fd).
bool IsZstdFile(const std::string& path);

// Compresses `from` into `to` (created 0600, written whole to a hidden ".<name>.tmp" beside it,
// fsynced, then renamed), one zstd frame at `level`, with zstd's content checksum. False with
// `error` naming the file and the reason; `to` is then left as it was.
bool CompressFileZstd(const std::string& from, const std::string& to, int level,
                      std::string* error);

// A stream over a file's text: decompressed when the file is zstd (any number of frames, as
// `zstd -d` reads them), the bytes as they are otherwise. nullptr with `error` when it cannot be
// opened. A corrupt or truncated compressed file ends the stream early (as at its end), and
// CompressedStreamError() says why: check it once the stream is read.
std::unique_ptr<std::istream> OpenMaybeCompressed(const std::string& path, std::string* error);
// The reason a stream from OpenMaybeCompressed failed ("" when it did not, or is not zstd).
std::string CompressedStreamError(const std::istream& stream);

}  // namespace sg
