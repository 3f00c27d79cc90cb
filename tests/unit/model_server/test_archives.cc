#include "tests/unit/model_server/test_archives.h"

#include <zip.h>

#include <fstream>
#include <sstream>

namespace sg::serve::testing {
namespace {

std::string Read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

bool WriteZip(const std::filesystem::path& path, const ArchiveEntries& entries) {
  int code = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (!z) return false;
  for (const auto& [name, content] : entries) {
    zip_source_t* src = zip_source_buffer(z, content.data(), content.size(), 0);
    if (!src || zip_file_add(z, name.c_str(), src, ZIP_FL_ENC_UTF_8) < 0) {
      if (src) zip_source_free(src);
      zip_discard(z);
      return false;
    }
  }
  return zip_close(z) == 0;
}

nlohmann::json MarManifest(nlohmann::json model) {
  return {{"createdOn", "07/12/2026 08:00:00"},
          {"runtime", "python"},
          {"model", std::move(model)},
          {"archiverVersion", "0.12.0"}};
}

nlohmann::json MarModel(const std::string& name, const std::string& version,
                        const std::string& serialized_file) {
  return {{"modelName", name},
          {"serializedFile", serialized_file},
          {"handler", "image_classifier"},
          {"modelVersion", version}};
}

ArchiveEntries MarEntries(nlohmann::json model, const std::filesystem::path& model_path,
                          const std::filesystem::path& labels_path, const std::string& yaml) {
  if (!yaml.empty()) model["configFile"] = "model-config.yaml";
  ArchiveEntries entries = {{"MAR-INF/MANIFEST.json", MarManifest(model).dump(2)},
                            {model["serializedFile"].get<std::string>(), Read(model_path)}};
  if (!labels_path.empty()) entries.push_back({"index_to_name.json", Read(labels_path)});
  if (!yaml.empty()) entries.push_back({"model-config.yaml", yaml});
  return entries;
}

}  // namespace sg::serve::testing
