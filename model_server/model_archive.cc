#include "model_server/model_archive.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>
#include <zip.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "common/config.h"

namespace sg::serve {
namespace {

namespace fs = std::filesystem;

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipCloser>;

// Opens a zip file read-only; null with `error` set when it is not one.
ZipPtr OpenZip(const std::string& path, std::string* error) {
  int code = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &code);
  if (!z) {
    zip_error_t e;
    zip_error_init_with_code(&e, code);
    *error = zip_error_strerror(&e);
    zip_error_fini(&e);
  }
  return ZipPtr(z);
}

// A zip entry name that stays inside the folder it is extracted to.
bool SafeEntryName(const std::string& name) {
  if (name.empty() || name.front() == '/' || name.find('\0') != std::string::npos) return false;
  for (const auto& part : fs::path(name)) {
    if (part == "..") return false;
  }
  return true;
}

// A TorchScript file is a zip whose folder holds constants.pkl and code/; a state_dict saved
// with torch.save has neither, an ONNX file is no zip at all.
bool IsTorchScript(const std::string& path, std::string* why) {
  std::string error;
  auto z = OpenZip(path, &error);
  if (!z) {
    *why =
        "not a zip file (" + error + "), so neither TorchScript nor a state_dict of torch >= 1.6";
    return false;
  }
  zip_int64_t n = zip_get_num_entries(z.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    const char* name = zip_get_name(z.get(), i, 0);
    if (!name) continue;
    std::string entry = name;
    if (entry.size() >= 14 && entry.compare(entry.size() - 14, 14, "/constants.pkl") == 0) {
      return true;
    }
  }
  *why = "a torch.save file without TorchScript code (a state_dict or a pickled eager model)";
  return false;
}

// The sentence every refusal of Python code ends with.
constexpr const char* kExportAdvice =
    "export the model to TorchScript (torch.jit.script or torch.jit.trace, then .save) and "
    "archive the .pt as --serialized-file with --handler image_classifier and no --model-file";

std::string JsonString(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// model-config.yaml's frontend keys, read as TorchServe reads them (ModelConfig.build).
bool ApplyModelYaml(const fs::path& file, const std::string& shown, ModelConfig* m,
                    std::string* error, std::vector<std::string>* warnings,
                    std::set<std::string>* yaml_keys) {
  std::string text, why;
  if (!ReadSmallFile(file.string(), kMaxConfigFileBytes, &text, &why)) {
    *error = shown + ": " + why + " (named by model.configFile in MANIFEST.json)";
    return false;
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    *error = shown + ": line " + std::to_string(e.mark.line + 1) + ", column " +
             std::to_string(e.mark.column + 1) + ": " + e.msg;
    return false;
  }
  if (root.IsNull()) return true;  // an empty file: no settings
  if (!root.IsMap()) {
    *error = shown + ": must be a mapping of settings (minWorkers: 1, ...)";
    return false;
  }
  auto warn = [&](const std::string& key, const std::string& why) {
    if (warnings) warnings->push_back(shown + ": " + key + ": ignored: " + why);
  };
  auto as_int = [&](const YAML::Node& v, const std::string& key, int lo, int* out) {
    try {
      if (!v.IsScalar()) throw YAML::Exception(v.Mark(), "not a scalar");
      int value = v.as<int>();
      if (value < lo) {
        *error = shown + ": " + key + ": must be >= " + std::to_string(lo) + ", got " +
                 std::to_string(value);
        return false;
      }
      *out = value;
      return true;
    } catch (const YAML::Exception&) {
      *error = shown + ": " + key + ": must be an integer";
      return false;
    }
  };
  int min_workers = -1, max_workers = -1;
  for (const auto& entry : root) {
    std::string key = entry.first.as<std::string>();
    const YAML::Node& v = entry.second;
    int value = 0;
    static const std::set<std::string> kHonoured = {"minWorkers",      "maxWorkers",
                                                    "batchSize",       "maxBatchDelay",
                                                    "responseTimeout", "jobQueueSize"};
    if (yaml_keys && kHonoured.count(key)) yaml_keys->insert(key);
    if (key == "minWorkers") {
      if (!as_int(v, key, 1, &min_workers)) return false;  // 0 workers: nothing would serve
    } else if (key == "maxWorkers") {
      if (!as_int(v, key, 0, &max_workers)) return false;
    } else if (key == "batchSize") {
      if (!as_int(v, key, 1, &value)) return false;
      m->batch_size = value;
    } else if (key == "maxBatchDelay") {
      if (!as_int(v, key, 0, &value)) return false;
      m->max_batch_delay = std::chrono::milliseconds(value);
    } else if (key == "responseTimeout") {
      if (!as_int(v, key, 1, &value)) return false;
      m->response_timeout = std::chrono::seconds(value);
    } else if (key == "jobQueueSize") {
      if (!as_int(v, key, 1, &value)) return false;
      m->job_queue_size = value;
    } else if (key == "deviceType") {
      std::string device = v.IsScalar() ? v.as<std::string>() : "";
      if (device == "gpu") {
        warn(key,
             "sg-serve serves archives on the CPU (device \"cuda\" exists in its JSON config)");
      } else if (device != "cpu") {
        *error = shown + ": deviceType: must be cpu or gpu, got \"" + device + "\"";
        return false;
      }
    } else if (key == "startupTimeout") {
      warn(key, "workers have sg-serve's own start-up deadline");
    } else {
      // deviceIds, parallelType, torchrun, pippy, useVenv, maxRetryTimeoutInSec, ... and the
      // backend parameters a custom handler would read: nothing here reads them.
      warn(key, "not used by sg-serve's built-in handlers");
    }
  }
  if (min_workers >= 0) m->workers = min_workers;
  if (max_workers >= 0 && min_workers >= 0 && max_workers < min_workers) {
    *error = shown + ": maxWorkers (" + std::to_string(max_workers) + ") is below minWorkers (" +
             std::to_string(min_workers) + ")";
    return false;
  }
  if (max_workers >= 0 && max_workers != min_workers) {
    warn("maxWorkers",
         "sg-serve starts minWorkers workers and does not scale on its own "
         "(TorchServe neither: scale with PUT /models/{name}?min_worker=N)");
  }
  return true;
}

// Reads MANIFEST.json and the files it names from an archive folder `dir`.
bool ReadArchiveFolder(const fs::path& dir, const std::string& shown, const std::string& stem,
                       ModelConfig* m, std::string* error, std::vector<std::string>* warnings,
                       std::set<std::string>* yaml_keys) {
  auto fail = [&](const std::string& why) {
    *error = shown + ": " + why;
    return false;
  };
  fs::path manifest_path = dir / "MAR-INF" / "MANIFEST.json";
  std::string text, why;
  std::error_code ec;
  if (!fs::exists(manifest_path, ec)) {
    return fail(
        "MAR-INF/MANIFEST.json is missing: not a model archive (write it with "
        "torch-model-archiver)");
  }
  if (!ReadSmallFile(manifest_path.string(), kMaxConfigFileBytes, &text, &why)) {
    return fail("MAR-INF/MANIFEST.json: " + why);
  }
  nlohmann::json manifest = nlohmann::json::parse(text, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object()) {
    return fail("MAR-INF/MANIFEST.json: not a JSON object");
  }
  auto model_it = manifest.find("model");
  if (model_it == manifest.end() || !model_it->is_object()) {
    return fail(
        "MAR-INF/MANIFEST.json: $.model: missing (TorchServe: \"Missing Model entry in "
        "manifest file.\")");
  }
  const auto& model = *model_it;
  std::string runtime = JsonString(manifest, "runtime");
  if (runtime.empty()) runtime = "python";  // the archiver's default
  if (runtime != "python" && runtime != "python3") {
    return fail("MAR-INF/MANIFEST.json: $.runtime: \"" + runtime +
                "\" is not served here (only TorchScript with a built-in handler, runtime "
                "python)");
  }
  if (auto model_file = JsonString(model, "modelFile"); !model_file.empty()) {
    return fail("MAR-INF/MANIFEST.json: $.model.modelFile: \"" + model_file +
                "\" is an eager model: its Python class cannot run in sg-serve (libtorch, no "
                "Python); " +
                kExportAdvice);
  }
  std::string handler = JsonString(model, "handler");
  if (handler.empty()) {
    return fail("MAR-INF/MANIFEST.json: $.model.handler: missing (use --handler image_classifier)");
  }
  if (handler == "image_classifier") {
    m->handler = HandlerKind::kImageClassifier;
  } else if (handler == "image_segmenter" || handler == "object_detector" ||
             handler == "text_classifier") {
    return fail("MAR-INF/MANIFEST.json: $.model.handler: TorchServe's built-in \"" + handler +
                "\" is not served by sg-serve, which has image_classifier (and its own "
                "image_scorer and tensor handlers in its JSON config)");
  } else {
    return fail("MAR-INF/MANIFEST.json: $.model.handler: \"" + handler +
                "\" is a custom Python handler: it cannot run in sg-serve (no Python); use the "
                "built-in image_classifier if its pre- and post-processing match yours (resize "
                "256, crop 224, ImageNet normalisation, softmax top 5), or serve the model from "
                "sg-serve's JSON config with the handler that fits; " +
                kExportAdvice);
  }
  std::string version = JsonString(model, "modelVersion");
  if (version.empty()) {
    return fail(
        "MAR-INF/MANIFEST.json: $.model.modelVersion: missing (TorchServe refuses it "
        "too: \"Model version is not defined.\"; archive with --version)");
  }
  m->version = version;
  std::string name = JsonString(model, "modelName");
  m->name = name.empty() ? stem : name;

  std::string serialized = JsonString(model, "serializedFile");
  if (serialized.empty()) {
    return fail(
        "MAR-INF/MANIFEST.json: $.model.serializedFile: missing: sg-serve needs the "
        "TorchScript file (archive it with --serialized-file model.pt)");
  }
  if (!SafeEntryName(serialized)) {
    return fail("MAR-INF/MANIFEST.json: $.model.serializedFile: \"" + serialized +
                "\" points outside the archive");
  }
  fs::path serialized_path = dir / serialized;
  if (!fs::is_regular_file(serialized_path, ec)) {
    return fail("MAR-INF/MANIFEST.json: $.model.serializedFile: \"" + serialized +
                "\" is not in the archive");
  }
  if (std::string why; !IsTorchScript(serialized_path.string(), &why)) {
    return fail(serialized + ": " + why + "; sg-serve runs TorchScript only: " + kExportAdvice);
  }
  m->path = serialized_path.lexically_normal().string();

  fs::path labels = dir / "index_to_name.json";
  m->labels_path = fs::is_regular_file(labels, ec) ? labels.string() : "";

  std::string config_file = JsonString(model, "configFile");
  if (!config_file.empty()) {
    if (!SafeEntryName(config_file)) {
      return fail("MAR-INF/MANIFEST.json: $.model.configFile: \"" + config_file +
                  "\" points outside the archive");
    }
    if (!ApplyModelYaml(dir / config_file, shown + ": " + config_file, m, error, warnings,
                        yaml_keys)) {
      return false;
    }
  }
  if (warnings) {
    if (auto req = JsonString(model, "requirementsFile"); !req.empty()) {
      warnings->push_back(shown +
                          ": MAR-INF/MANIFEST.json: $.model.requirementsFile: ignored: "
                          "no Python runs in sg-serve");
    }
    if (auto envelope = JsonString(model, "envelope"); !envelope.empty()) {
      warnings->push_back(shown + ": MAR-INF/MANIFEST.json: $.model.envelope: \"" + envelope +
                          "\" ignored: sg-serve answers KServe requests at their own paths");
    }
  }
  return true;
}

bool IsGzip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

}  // namespace

bool ExtractArchive(const std::string& zip_path, const std::string& dir, uint64_t max_bytes,
                    std::string* error) {
  std::string why;
  auto z = OpenZip(zip_path, &why);
  if (!z) {
    *error = zip_path + ": not a zip archive: " + why;
    return false;
  }
  zip_int64_t n = zip_get_num_entries(z.get(), 0);
  if (n > kMaxArchiveEntries) {
    *error = zip_path + ": " + std::to_string(n) + " entries, more than the " +
             std::to_string(kMaxArchiveEntries) + " an archive may hold";
    return false;
  }
  // First pass: names and declared sizes, before anything is written.
  uint64_t declared = 0;
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    if (zip_stat_index(z.get(), i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME)) {
      *error = zip_path + ": entry " + std::to_string(i) + " cannot be read";
      return false;
    }
    if (!SafeEntryName(st.name)) {
      *error = zip_path + ": entry \"" + std::string(st.name) +
               "\" has an absolute name or a .. component (refused: it would be written "
               "outside the archive's folder)";
      return false;
    }
    if (st.valid & ZIP_STAT_SIZE) declared += st.size;
    if (declared > max_bytes) {
      *error = zip_path + ": extracts to more than " + std::to_string(max_bytes) +
               " bytes (the limit on an archive's size)";
      return false;
    }
  }
  uint64_t written = 0;
  std::vector<char> buffer(1 << 16);
  for (zip_int64_t i = 0; i < n; ++i) {
    std::string name = zip_get_name(z.get(), i, 0);
    fs::path target = fs::path(dir) / name;
    std::error_code ec;
    if (name.back() == '/') {
      fs::create_directories(target, ec);
      if (ec) {
        *error = zip_path + ": entry \"" + name + "\": " + ec.message();
        return false;
      }
      continue;
    }
    fs::create_directories(target.parent_path(), ec);
    if (ec) {
      *error = zip_path + ": entry \"" + name + "\": " + ec.message();
      return false;
    }
    // O_EXCL: a name twice in the archive is refused rather than silently overwritten.
    int fd = open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
      *error = zip_path + ": entry \"" + name +
               "\": " + (errno == EEXIST ? std::string("appears twice") : std::strerror(errno));
      return false;
    }
    zip_file_t* f = zip_fopen_index(z.get(), i, 0);
    bool ok = f != nullptr;
    std::string reason = ok ? "" : zip_strerror(z.get());
    while (ok) {
      zip_int64_t got = zip_fread(f, buffer.data(), buffer.size());
      if (got < 0) {
        reason = zip_file_strerror(f);
        ok = false;
        break;
      }
      if (got == 0) break;
      written += static_cast<uint64_t>(got);
      if (written > max_bytes) {
        reason = "extracts to more than " + std::to_string(max_bytes) +
                 " bytes (the limit on an archive's size)";
        ok = false;
        break;
      }
      if (write(fd, buffer.data(), static_cast<size_t>(got)) != got) {
        reason = std::strerror(errno);
        ok = false;
      }
    }
    if (f) zip_fclose(f);
    close(fd);
    if (!ok) {
      *error = zip_path + ": entry \"" + name + "\": " + reason;
      return false;
    }
  }
  return true;
}

bool OpenModelArchive(const std::string& path, const std::string& work_dir, ModelConfig* model,
                      std::string* error, std::vector<std::string>* warnings,
                      std::set<std::string>* yaml_keys) {
  std::error_code ec;
  fs::path source(path);
  std::string stem = source.filename().string();
  if (stem.empty()) stem = source.parent_path().filename().string();
  if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".mar") == 0) {
    stem = stem.substr(0, stem.size() - 4);
  }
  model->url = source.filename().empty() ? source.parent_path().filename().string()
                                         : source.filename().string();
  if (fs::is_directory(source, ec)) {
    fs::path dir = source;
    // An archive extracted with a folder at its root (as on SageMaker): that folder.
    if (!fs::exists(dir / "MAR-INF", ec)) {
      std::vector<fs::path> entries;
      for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e.path());
      if (entries.size() == 1 && fs::is_directory(entries[0], ec)) dir = entries[0];
    }
    return ReadArchiveFolder(dir, path, stem, model, error, warnings, yaml_keys);
  }
  if (!fs::is_regular_file(source, ec)) {
    *error = path + ": no such model archive (a .mar file or an extracted archive folder)";
    return false;
  }
  if (IsGzip(path)) {
    *error = path +
             ": a .tar.gz archive (--archive-format tgz): extract it (tar xzf) and give "
             "the folder, or archive with the default format";
    return false;
  }
  fs::create_directories(work_dir, ec);
  if (ec) {
    *error = work_dir + ": cannot create the folder to extract archives into: " + ec.message();
    return false;
  }
  std::string dir_template = (fs::path(work_dir) / (stem + "-XXXXXX")).string();
  if (!mkdtemp(dir_template.data())) {
    *error = work_dir + ": cannot create a folder in it: " + std::strerror(errno);
    return false;
  }
  if (!ExtractArchive(path, dir_template, kMaxArchiveBytes, error) ||
      !ReadArchiveFolder(dir_template, path, stem, model, error, warnings, yaml_keys)) {
    fs::remove_all(dir_template, ec);
    return false;
  }
  return true;
}

}  // namespace sg::serve
