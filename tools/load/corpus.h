// The requests sg-load replays: a directory of files, the Fashion-MNIST test set rendered as PNG
// in memory, or the request bodies captured in a pair log (docs/pair-log.md).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg::load {

struct CorpusItem {
  std::string name;                  // file name, "fashion-mnist[42]" or the pair id, for messages
  std::string body;                  // request body bytes
  std::string content_type;          // guessed from the file, or recorded; empty: unknown
  std::optional<std::string> label;  // the true label, when the corpus knows it
};

// The ten Fashion-MNIST class names, index = label (the same as models/*/index_to_name.json).
const std::vector<std::string>& FashionMnistClasses();

// File names carry a label after the last "__" of the stem: "00042__Trouser.png". Characters
// that cannot (or should not) appear in a file name are percent-encoded, so any label survives:
// "T-shirt/top" -> "T-shirt%2Ftop".
std::string FileNameForLabel(std::string_view stem, std::string_view label,
                             std::string_view extension);
// The label encoded in `file_name` by FileNameForLabel, or nullopt when it has none.
std::optional<std::string> LabelFromFileName(std::string_view file_name);

// "image/png" for .png, "image/jpeg" for .jpg/.jpeg, "application/json" for .json, "text/plain"
// for .txt, else "application/octet-stream".
std::string ContentTypeForFileName(std::string_view file_name);

// Every regular file directly in `dir`, sorted by name (hidden files skipped). Labels come from
// the file names (see FileNameForLabel). nullopt with `error` if the directory cannot be read or
// holds no files.
std::optional<std::vector<CorpusItem>> LoadDirectoryCorpus(const std::string& dir,
                                                           std::string* error);

// The Fashion-MNIST test images as PNG bodies labelled with their class names. `path` is a
// directory holding t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz], or an images
// IDX file whose labels file is found by replacing "images-idx3" with "labels-idx1" in its name.
// `limit` (0: all) keeps the first images.
std::optional<std::vector<CorpusItem>> LoadFashionMnistCorpus(const std::string& path, size_t limit,
                                                              std::string* error);

// Writes LoadFashionMnistCorpus's items to `out_dir` (created) as "NNNNN__<label>.png".
// Returns the number written, or nullopt with `error`.
std::optional<size_t> RenderFashionMnist(const std::string& path, size_t limit,
                                         const std::string& out_dir, std::string* error);

// The requests of the "pair" records in a pair log whose body was captured whole. The label is
// the captured header `label_header` (lower-cased; empty: none). `skipped` counts pair records
// without a whole body and lines that do not decode.
std::optional<std::vector<CorpusItem>> LoadPairLogCorpus(const std::string& path,
                                                         const std::string& label_header,
                                                         size_t* skipped, std::string* error);

}  // namespace sg::load
