// TorchServe model archives written for tests: real zip files (libzip) holding a manifest as
// torch-model-archiver writes it and the real TorchScript fixtures.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace sg::serve::testing {

using ArchiveEntries = std::vector<std::pair<std::string, std::string>>;

// Writes a zip file with `entries` (name, content) in that order. False when libzip fails.
bool WriteZip(const std::filesystem::path& path, const ArchiveEntries& entries);

// MAR-INF/MANIFEST.json's document around `model` (runtime python, archiver 0.12.0).
nlohmann::json MarManifest(nlohmann::json model);

// The manifest's model for a TorchScript file served with image_classifier.
nlohmann::json MarModel(const std::string& name, const std::string& version,
                        const std::string& serialized_file);

// A whole archive: the manifest, `serialized_file` holding the bytes of `model_path`, the
// labels (when `labels_path` is not empty) and model-config.yaml (when `yaml` is not empty; the
// manifest names it).
ArchiveEntries MarEntries(nlohmann::json model, const std::filesystem::path& model_path,
                          const std::filesystem::path& labels_path, const std::string& yaml);

}  // namespace sg::serve::testing
