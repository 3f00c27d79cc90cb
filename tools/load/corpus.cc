#include "tools/load/corpus.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/pair_record.h"
#include "common/strings.h"
#include "common/zstd_file.h"
#include "tools/load/idx_file.h"
#include "tools/load/png_codec.h"

namespace sg::load {
namespace fs = std::filesystem;

namespace {

bool SafeInFileName(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == ' ' || c == '+' || c == ',' || c == '(' || c == ')';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> ReadWholeFile(const fs::path& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path.string() + ": cannot open";
    return std::nullopt;
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) {
    *error = path.string() + ": read error";
    return std::nullopt;
  }
  return std::move(out).str();
}

// The first of `names` that exists in `dir`, as a path (the first name when none exists, so the
// error message names the expected file).
std::string FindFile(const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (fs::exists(dir / name)) return (dir / name).string();
  }
  return (dir / *names.begin()).string();
}

}  // namespace

const std::vector<std::string>& FashionMnistClasses() {
  static const std::vector<std::string> classes = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return classes;
}

std::string FileNameForLabel(std::string_view stem, std::string_view label,
                             std::string_view extension) {
  std::string name(stem);
  name += "__";
  for (char c : label) {
    if (SafeInFileName(c) && c != '%') {
      name += c;
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(c));
      name += hex;
    }
  }
  name += extension;
  return name;
}

std::optional<std::string> LabelFromFileName(std::string_view file_name) {
  std::string_view stem = file_name.substr(0, file_name.rfind('.'));
  size_t mark = stem.rfind("__");
  if (mark == std::string_view::npos || mark + 2 == stem.size()) return std::nullopt;
  std::string label;
  for (size_t i = mark + 2; i < stem.size(); ++i) {
    int hi, lo;
    if (stem[i] == '%' && i + 2 < stem.size() + 0 && (hi = HexValue(stem[i + 1])) >= 0 &&
        (lo = HexValue(stem[i + 2])) >= 0) {
      label += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      label += stem[i];
    }
  }
  return label;
}

std::string ContentTypeForFileName(std::string_view file_name) {
  std::string ext = ToLowerAscii(fs::path(file_name).extension().string());
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".json") return "application/json";
  if (ext == ".txt") return "text/plain";
  return "application/octet-stream";
}

std::optional<std::vector<CorpusItem>> LoadDirectoryCorpus(const std::string& dir,
                                                           std::string* error) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    *error = dir + ": " + ec.message();
    return std::nullopt;
  }
  std::vector<fs::path> files;
  for (const auto& entry : it) {
    std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.' && entry.is_regular_file()) files.push_back(entry.path());
  }
  if (files.empty()) {
    *error = dir + ": no files to replay";
    return std::nullopt;
  }
  std::sort(files.begin(), files.end());
  std::vector<CorpusItem> items;
  items.reserve(files.size());
  for (const auto& file : files) {
    auto body = ReadWholeFile(file, error);
    if (!body) return std::nullopt;
    std::string name = file.filename().string();
    items.push_back(
        {name, std::move(*body), ContentTypeForFileName(name), LabelFromFileName(name)});
  }
  return items;
}

std::optional<std::vector<CorpusItem>> LoadFashionMnistCorpus(const std::string& path, size_t limit,
                                                              std::string* error) {
  std::string images_path, labels_path;
  if (fs::is_directory(path)) {
    images_path = FindFile(path, {"t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"});
    labels_path = FindFile(path, {"t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"});
  } else {
    images_path = path;
    size_t at = path.rfind("images-idx3");
    if (at == std::string::npos) {
      *error = path + ": expected a directory or an \"...images-idx3...\" IDX file";
      return std::nullopt;
    }
    labels_path = path;
    labels_path.replace(at, 11, "labels-idx1");
  }
  auto images = ReadIdxFile(images_path, error);
  if (!images) return std::nullopt;
  auto labels = ReadIdxFile(labels_path, error);
  if (!labels) return std::nullopt;
  if (images->dims.size() != 3 || labels->dims.size() != 1 || images->dims[0] != labels->dims[0]) {
    *error = images_path + ": expected N x H x W images and N labels in " + labels_path;
    return std::nullopt;
  }
  const auto& classes = FashionMnistClasses();
  size_t count = images->dims[0];
  if (limit > 0) count = std::min(count, limit);
  size_t item_size = images->ItemSize();
  std::vector<CorpusItem> items;
  items.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    GrayImage image;
    image.height = images->dims[1];
    image.width = images->dims[2];
    auto first = images->data.begin() + static_cast<std::ptrdiff_t>(i * item_size);
    image.pixels.assign(first, first + static_cast<std::ptrdiff_t>(item_size));
    auto png = EncodeGrayPng(image, error);
    if (!png) return std::nullopt;
    uint8_t label = labels->data[i];
    if (label >= classes.size()) {
      *error = labels_path + ": label " + std::to_string(label) + " at " + std::to_string(i) +
               " is not a Fashion-MNIST class";
      return std::nullopt;
    }
    items.push_back(
        {"fashion-mnist[" + std::to_string(i) + "]", std::move(*png), "image/png", classes[label]});
  }
  return items;
}

std::optional<size_t> RenderFashionMnist(const std::string& path, size_t limit,
                                         const std::string& out_dir, std::string* error) {
  auto items = LoadFashionMnistCorpus(path, limit, error);
  if (!items) return std::nullopt;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) {
    *error = out_dir + ": " + ec.message();
    return std::nullopt;
  }
  for (size_t i = 0; i < items->size(); ++i) {
    std::string stem = std::to_string(i);
    if (stem.size() < 5) stem.insert(0, 5 - stem.size(), '0');
    fs::path file = fs::path(out_dir) / FileNameForLabel(stem, *(*items)[i].label, ".png");
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write((*items)[i].body.data(), static_cast<std::streamsize>((*items)[i].body.size()));
    if (!out) {
      *error = file.string() + ": write failed";
      return std::nullopt;
    }
  }
  return items->size();
}

std::optional<std::vector<CorpusItem>> LoadPairLogCorpus(const std::string& path,
                                                         const std::string& label_header,
                                                         size_t* skipped, std::string* error) {
  auto stream = OpenMaybeCompressed(path, error);  // a rotated pair log may be zstd
  if (!stream) return std::nullopt;
  std::istream& in = *stream;
  std::string header = ToLowerAscii(label_header);
  std::vector<CorpusItem> items;
  *skipped = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (Trim(line).empty()) continue;
    std::string why;
    auto entry = DecodePairLogLine(line, &why);
    if (!entry) {
      ++*skipped;
      continue;
    }
    const auto* pair = std::get_if<PairRecord>(&*entry);
    if (pair == nullptr) continue;  // counters lines carry no request
    if (!pair->request.body || pair->request.body_truncated) {
      ++*skipped;
      continue;
    }
    CorpusItem item{pair->id, *pair->request.body, "", std::nullopt};
    if (auto it = pair->request.headers.find("content-type"); it != pair->request.headers.end()) {
      item.content_type = it->second;
    }
    if (!header.empty()) {
      if (auto it = pair->request.headers.find(header); it != pair->request.headers.end()) {
        item.label = it->second;
      }
    }
    items.push_back(std::move(item));
  }
  if (std::string bad = CompressedStreamError(in); !bad.empty()) {
    *error = path + ": " + bad;
    return std::nullopt;
  }
  if (items.empty()) {
    *error = path + ": no pair record with a whole captured request body (" +
             std::to_string(*skipped) + " skipped)";
    return std::nullopt;
  }
  return items;
}

}  // namespace sg::load
