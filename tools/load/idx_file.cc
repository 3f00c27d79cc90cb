#include "tools/load/idx_file.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>

namespace sg::load {

size_t IdxArray::ItemSize() const {
  size_t size = 1;
  for (size_t i = 1; i < dims.size(); ++i) size *= dims[i];
  return size;
}

std::optional<IdxArray> ReadIdxFile(const std::string& path, std::string* error) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    *error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string bytes;
  char chunk[1 << 16];
  int n;
  while ((n = gzread(file, chunk, sizeof chunk)) > 0) bytes.append(chunk, static_cast<size_t>(n));
  bool read_failed = n < 0;
  gzclose(file);
  if (read_failed) {
    *error = path + ": corrupt gzip data";
    return std::nullopt;
  }
  auto u8 = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  if (bytes.size() < 4 || u8(0) != 0 || u8(1) != 0) {
    *error = path + ": not an IDX file (bad magic)";
    return std::nullopt;
  }
  if (u8(2) != 0x08) {
    *error = path + ": IDX element type " + std::to_string(u8(2)) + " unsupported (want 8)";
    return std::nullopt;
  }
  IdxArray array;
  size_t ndim = u8(3);
  size_t offset = 4 + 4 * ndim;
  if (ndim == 0 || bytes.size() < offset) {
    *error = path + ": truncated IDX header";
    return std::nullopt;
  }
  size_t total = 1;
  for (size_t d = 0; d < ndim; ++d) {
    size_t at = 4 + 4 * d;
    uint32_t dim = (uint32_t{u8(at)} << 24) | (uint32_t{u8(at + 1)} << 16) |
                   (uint32_t{u8(at + 2)} << 8) | uint32_t{u8(at + 3)};
    array.dims.push_back(dim);
    total *= dim;
  }
  if (bytes.size() - offset != total) {
    *error = path + ": IDX data has " + std::to_string(bytes.size() - offset) +
             " bytes, header says " + std::to_string(total);
    return std::nullopt;
  }
  array.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(offset), bytes.end());
  return array;
}

}  // namespace sg::load
