// TorchServe model archives: a `.mar` file (a zip written by torch-model-archiver) or the same
// files in a folder (`--archive-format no-archive`), opened into a ModelConfig that sg-serve
// serves like one from its own JSON config. See docs/model-server.md, "Coming from TorchServe".
//
// What an archive may hold, and what is refused (with a one-line reason saying what to do):
// - MAR-INF/MANIFEST.json: model.modelName, model.modelVersion (required, as TorchServe requires
//   it: "Model version is not defined."), model.serializedFile (a TorchScript file, required),
//   model.handler (a built-in handler name: image_classifier; others are refused), runtime
//   (python or python3: the built-in handler's runtime), model.configFile (model-config.yaml).
//   Refused: model.modelFile (an eager model: its Python class cannot run here), a custom
//   handler (a .py file or module:function), an ONNX or state_dict serializedFile.
// - index_to_name.json beside the manifest: the labels of image_classifier.
// - model-config.yaml (model.configFile): minWorkers, maxWorkers, batchSize, maxBatchDelay,
//   responseTimeout, jobQueueSize and deviceType: cpu are honoured; the others are ignored with
//   a warning naming each; a YAML syntax error or a wrongly typed value is an error.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "model_server/serve_config.h"

namespace sg::serve {

// The most bytes an archive may extract to, over all its entries (a zip bomb stops here).
inline constexpr uint64_t kMaxArchiveBytes = uint64_t{8} << 30;
// The most entries an archive may hold.
inline constexpr int kMaxArchiveEntries = 100'000;

// Opens the archive at `path`: a `.mar` file or an already-extracted archive folder.
// A `.mar` is extracted into a new folder created under `work_dir` (created when missing); entries
// with an absolute name or a `..` component are refused, and the total is bounded by
// kMaxArchiveBytes. The caller owns `work_dir` and removes it when the model is gone; an
// extracted folder is used in place (nothing is written to `work_dir`).
// On success sets in `model`: name (the manifest's modelName; the file or folder name without
// `.mar` when the manifest has none), url (the file or folder name: TorchServe's modelUrl),
// version (model.modelVersion), path (the serialized
// TorchScript file), handler, labels_path (index_to_name.json; "" when absent), and what
// model-config.yaml sets: workers (minWorkers), batch_size, max_batch_delay, response_timeout,
// job_queue_size; the keys it set are added to `yaml_keys` (when not null). Every other field
// keeps the value it had on entry (for a fresh ModelConfig: TorchServe's image_classifier
// preprocessing and top 5; the caller applies TorchServe's defaults, such as a 100 ms
// maxBatchDelay, before the call). Settings read but not honoured are appended to `warnings`
// (when not null), one line each naming the archive, the file and the key.
// Returns false with a one-line reason in `error` (naming the archive, the entry or key, and what
// to do); `model` is then unspecified and anything extracted is removed again.
bool OpenModelArchive(const std::string& path, const std::string& work_dir, ModelConfig* model,
                      std::string* error, std::vector<std::string>* warnings = nullptr,
                      std::set<std::string>* yaml_keys = nullptr);

// Extracts the zip file `zip_path` into the existing folder `dir`, refusing (before writing
// anything) entries with an absolute name or a `..` component, more than kMaxArchiveEntries
// entries and a declared total over `max_bytes`, and (while writing) an entry that appears twice
// or a total that grows over `max_bytes`. False with a one-line reason; what was written stays
// for the caller to remove.
bool ExtractArchive(const std::string& zip_path, const std::string& dir, uint64_t max_bytes,
                    std::string* error);

}  // namespace sg::serve
