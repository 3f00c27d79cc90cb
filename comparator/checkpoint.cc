#include "comparator/checkpoint.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/clock.h"
#include "common/pair_record.h"
#include "common/strings.h"
#include "comparator/comparison.h"
#include "comparator/state_codec.h"

namespace sg::comparator {

using nlohmann::json;

std::string CompareConfigHash(const std::string& config_text) {
  const json parsed = json::parse(config_text, nullptr, false);
  return Sha256Hex(parsed.is_discarded() ? config_text : parsed.dump());
}

std::string EncodeCheckpoint(const CheckpointIdentity& identity, const Comparison& comparison,
                             uint64_t judged) {
  // A string that is not UTF-8 (a header value such as the true label, or a request id, may be
  // any bytes) is written with U+FFFD for each bad byte, as the pair log and the report write
  // it: a strict dump would throw in the judging thread and end the gateway.
  constexpr auto kReplace = json::error_handler_t::replace;
  // The state's tree is about twelve times its text (61 MB for the 5 MB of a month's state,
  // docs/comparator.md), so it lives only until its text is made, and the document takes the
  // text as it is instead of a copy of the tree.
  const std::string state_text = StateCodec::Encode(comparison).dump(-1, ' ', false, kReplace);
  const json head = {{"format", kCheckpointFormat},
                     {"version", kCheckpointVersion},
                     {"run", identity.run},
                     {"config_sha256", identity.config_sha256},
                     {"written_at_us", NowUnixMicros()},
                     {"judged", judged},
                     {"pairs", comparison.pairs()},
                     {"state_sha256", Sha256Hex(state_text)}};
  std::string text = head.dump(-1, ' ', false, kReplace);
  text.pop_back();  // the head's closing brace
  text.reserve(text.size() + state_text.size() + 12);
  text += ",\"state\":";
  text += state_text;
  text += "}\n";
  return text;
}

bool WriteCheckpoint(const std::string& path, const CheckpointIdentity& identity,
                     const Comparison& comparison, uint64_t judged, std::string* error) {
  return WriteFileAtomically(path, EncodeCheckpoint(identity, comparison, judged), 0644, error);
}

LoadedCheckpoint LoadCheckpoint(const std::string& path, const CheckpointIdentity& identity,
                                std::shared_ptr<const CompareConfig> config,
                                Comparison* comparison) {
  LoadedCheckpoint out;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return out;
  auto refuse = [&](std::string why) {
    out.result = LoadedCheckpoint::Result::kRefused;
    out.reason = std::move(why);
    const std::string aside = path + ".refused-" + FormatUtc(std::time(nullptr), "%Y%m%dT%H%M%SZ");
    if (std::rename(path.c_str(), aside.c_str()) == 0) out.set_aside = aside;
    return out;
  };
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return refuse("cannot read it");
  const json doc = json::parse(text.str(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return refuse("not JSON (truncated or corrupt)");
  if (doc.value("format", "") != kCheckpointFormat) return refuse("not a comparison checkpoint");
  if (doc.value("version", 0) != kCheckpointVersion) {
    return refuse("version " + doc.value("version", json()).dump() + ", this build reads " +
                  std::to_string(kCheckpointVersion));
  }
  if (doc.value("run", "") != identity.run) {
    return refuse("of run \"" + doc.value("run", "") + "\", this is run \"" + identity.run + "\"");
  }
  if (doc.value("config_sha256", "") != identity.config_sha256) {
    return refuse("written with another compare config (sha256 " + doc.value("config_sha256", "") +
                  ", now " + identity.config_sha256 + ")");
  }
  if (!doc.contains("state") || doc.value("state_sha256", "") != Sha256Hex(doc["state"].dump())) {
    return refuse("the state's checksum does not match (corrupt)");
  }
  Comparison loaded(std::move(config));
  std::string error;
  if (!DecodeComparisonState(doc["state"], &loaded, &error)) {
    return refuse("the state cannot be read: " + error);
  }
  *comparison = std::move(loaded);
  out.result = LoadedCheckpoint::Result::kLoaded;
  out.judged = doc.value("judged", uint64_t{0});
  out.pairs = doc.value("pairs", uint64_t{0});
  out.written_at_us = doc.value("written_at_us", int64_t{0});
  return out;
}

}  // namespace sg::comparator
