#include "model_server/ts_properties.h"

#include <algorithm>
#include <cstdint>

namespace sg::serve {
namespace {

bool Blank(char c) {
  return c == ' ' || c == '\t' || c == '\f';
}

struct LogicalLine {
  std::string text;  // escapes still in, continuations joined
  int line = 0;
};

// Splits `text` into logical lines as java.util.Properties' LineReader does.
std::vector<LogicalLine> LogicalLines(std::string_view text) {
  std::vector<LogicalLine> out;
  size_t i = 0;
  int line = 1;
  auto skip_terminator = [&] {  // \n, \r or \r\n
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    ++i;
    ++line;
  };
  while (i < text.size()) {
    while (i < text.size() && Blank(text[i])) ++i;
    if (i < text.size() && (text[i] == '\r' || text[i] == '\n')) {
      skip_terminator();
      continue;
    }
    if (i >= text.size()) break;
    if (text[i] == '#' || text[i] == '!') {  // a comment: the rest of this natural line
      while (i < text.size() && text[i] != '\r' && text[i] != '\n') ++i;
      if (i < text.size()) skip_terminator();
      continue;
    }
    LogicalLine logical;
    logical.line = line;
    while (i < text.size()) {
      char c = text[i];
      if (c != '\r' && c != '\n') {
        logical.text.push_back(c);
        ++i;
        continue;
      }
      size_t backslashes = 0;
      while (backslashes < logical.text.size() &&
             logical.text[logical.text.size() - 1 - backslashes] == '\\') {
        ++backslashes;
      }
      skip_terminator();
      if (backslashes % 2 == 0) break;
      logical.text.pop_back();  // the continuation's backslash
      while (i < text.size() && Blank(text[i])) ++i;
    }
    // At the end of the file a last odd backslash is dropped, as Java does.
    size_t backslashes = 0;
    while (backslashes < logical.text.size() &&
           logical.text[logical.text.size() - 1 - backslashes] == '\\') {
      ++backslashes;
    }
    if (i >= text.size() && backslashes % 2 == 1) logical.text.pop_back();
    out.push_back(std::move(logical));
  }
  return out;
}

void AppendUtf8(uint32_t code, std::string* out) {
  if (code < 0x80) {
    out->push_back(static_cast<char>(code));
  } else if (code < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code >> 6)));
    out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xE0 | (code >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
  }
}

// Properties.loadConvert: resolves the escapes of a key or a value.
bool Unescape(std::string_view in, std::string* out, std::string* error) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (++i >= in.size()) break;
    c = in[i];
    switch (c) {
      case 't':
        out->push_back('\t');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'u': {
        uint32_t code = 0;
        for (int k = 0; k < 4; ++k) {
          char h = ++i < in.size() ? in[i] : '\0';
          int digit = h >= '0' && h <= '9'   ? h - '0'
                      : h >= 'a' && h <= 'f' ? h - 'a' + 10
                      : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                             : -1;
          if (digit < 0) {
            *error = "malformed \\uxxxx escape (four hex digits expected)";
            return false;
          }
          code = code * 16 + static_cast<uint32_t>(digit);
        }
        AppendUtf8(code, out);
        break;
      }
      default:
        out->push_back(c);
    }
  }
  return true;
}

}  // namespace

const Property* Properties::Find(std::string_view key) const {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->key == key) return &*it;
  }
  return nullptr;
}

bool ParseProperties(std::string_view text, Properties* out, std::string* error) {
  out->entries.clear();
  for (const auto& logical : LogicalLines(text)) {
    const std::string& s = logical.text;
    size_t key_end = 0, value_start = s.size();
    bool has_separator = false, backslash = false;
    for (; key_end < s.size(); ++key_end) {
      char c = s[key_end];
      if (!backslash && (c == '=' || c == ':')) {
        value_start = key_end + 1;
        has_separator = true;
        break;
      }
      if (!backslash && Blank(c)) {
        value_start = key_end + 1;
        break;
      }
      backslash = c == '\\' ? !backslash : false;
    }
    while (value_start < s.size()) {
      char c = s[value_start];
      if (!Blank(c)) {
        if (has_separator || (c != '=' && c != ':')) break;
        has_separator = true;
      }
      ++value_start;
    }
    Property p;
    p.line = logical.line;
    std::string why;
    if (!Unescape(std::string_view(s).substr(0, key_end), &p.key, &why) ||
        !Unescape(std::string_view(s).substr(std::min(value_start, s.size())), &p.value, &why)) {
      *error = "line " + std::to_string(logical.line) + ": " + why;
      return false;
    }
    out->entries.push_back(std::move(p));
  }
  return true;
}

}  // namespace sg::serve
