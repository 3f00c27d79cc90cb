// Reading IDX files (the MNIST / Fashion-MNIST container), gzip-compressed or not.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sg::load {

// An unsigned-byte IDX array: `dims` (e.g. {10000, 28, 28}) and the row-major bytes.
struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
  // Product of dims[1..]: the bytes of one item.
  size_t ItemSize() const;
};

// Reads `path` (gzip or plain: zlib reads both). Only type 0x08 (unsigned byte) is supported,
// which is all MNIST-style data sets use. nullopt with `error` on a missing or malformed file.
std::optional<IdxArray> ReadIdxFile(const std::string& path, std::string* error);

}  // namespace sg::load
