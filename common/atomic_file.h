// Replacing a small state file so that a crash or a power cut leaves either the old file or the
// new one whole, never a mix: the comparison's checkpoint (comparator/checkpoint.cc) and the
// cutover's state file (gateway/cutover.cc). The fsyncs it is made of serve the pair log's
// rotation too (gateway/jsonl_pair_sink.cc).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace sg {

// Writes `bytes` to PATH.tmp (created with `mode`, truncated if there), fsyncs it, renames it
// over `path`, then fsyncs the folder so the rename itself is on disk. False with `error` (the
// file and the reason) when a step fails; `path` is then as it was (except after a failed folder
// fsync: renamed, but not known to be durable) and PATH.tmp is removed.
bool WriteFileAtomically(const std::string& path, std::string_view bytes, mode_t mode,
                         std::string* error);

// fsyncs the file at `path` (its data and size on disk). False with `error` when it fails.
bool SyncFile(const std::string& path, std::string* error);
// fsyncs the folder that holds `path`, so that renames, creations and removals of entries in it
// are on disk. False with `error` (the folder and the reason) when it fails.
bool SyncFolderOf(const std::string& path, std::string* error);

}  // namespace sg
