#include "model_server/multipart.h"

#include "common/strings.h"

namespace sg::serve {
namespace {

// The value of parameter `name` in a header value such as `form-data; name="data"`.
std::string Parameter(std::string_view header, std::string_view name) {
  std::string lower = ToLowerAscii(header);
  size_t pos = 0;
  while ((pos = lower.find(name, pos)) != std::string::npos) {
    bool starts =
        pos == 0 || lower[pos - 1] == ';' || lower[pos - 1] == ' ' || lower[pos - 1] == '\t';
    size_t eq = pos + name.size();
    if (starts && eq < lower.size() && lower[eq] == '=') {
      std::string_view rest = header.substr(eq + 1);
      if (!rest.empty() && rest[0] == '"') {
        auto end = rest.find('"', 1);
        return std::string(rest.substr(1, end == std::string_view::npos ? end : end - 1));
      }
      auto end = rest.find(';');
      return std::string(Trim(rest.substr(0, end)));
    }
    pos = eq;
  }
  return "";
}

}  // namespace

bool ExtractPredictionInput(std::string_view content_type, std::string_view body,
                            std::string_view* input, std::string* error) {
  std::string type = ToLowerAscii(Trim(content_type.substr(0, content_type.find(';'))));
  if (type != "multipart/form-data") {
    *input = body;
    return true;
  }
  std::string boundary = Parameter(content_type, "boundary");
  if (boundary.empty()) {
    *error = "multipart/form-data without a boundary";
    return false;
  }
  std::string delimiter = "--" + boundary;
  size_t pos = body.find(delimiter);
  std::string_view fallback;
  bool have_fallback = false;
  while (pos != std::string_view::npos) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") break;  // closing delimiter
    if (body.substr(pos, 2) == "\r\n") pos += 2;
    auto headers_end = body.find("\r\n\r\n", pos);
    if (headers_end == std::string_view::npos) break;
    std::string_view headers = body.substr(pos, headers_end - pos);
    size_t content = headers_end + 4;
    auto next = body.find("\r\n" + delimiter, content);
    if (next == std::string_view::npos) break;
    std::string_view part = body.substr(content, next - content);
    std::string name;
    for (const auto& line : Split(headers, '\n')) {
      std::string_view l = Trim(line);
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      if (ToLowerAscii(l.substr(0, 20)) == "content-disposition:") name = Parameter(l, "name");
    }
    if (name == "data") {
      *input = part;
      return true;
    }
    if (name == "body" && !have_fallback) {
      fallback = part;
      have_fallback = true;
    }
    pos = next + 2;
  }
  if (have_fallback) {
    *input = fallback;
    return true;
  }
  *error = "multipart/form-data body has no field named \"data\"";
  return false;
}

}  // namespace sg::serve
