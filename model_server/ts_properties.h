// TorchServe's config.properties, read as java.util.Properties.load reads it: `#` and `!`
// comment lines, `key=value`, `key: value` and `key value`, a backslash at the end of a line
// continuing it (the next line's leading blanks dropped), the escapes \t \n \r \f \uXXXX and
// `\x` for any other x, the last of a repeated key winning.
// One difference: Java reads the file as ISO-8859-1; bytes outside ASCII are kept as they are
// here (a UTF-8 path stays that path), and \uXXXX is written as UTF-8.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sg::serve {

struct Property {
  std::string key;
  std::string value;
  int line = 0;  // where the key starts, 1-based
};

struct Properties {
  std::vector<Property> entries;  // in file order; a repeated key appears each time
  // The last entry with `key`; null when there is none.
  const Property* Find(std::string_view key) const;
};

// Parses `text`. False with "line N: reason" in `error` on a malformed \uXXXX escape (where Java
// throws IllegalArgumentException).
bool ParseProperties(std::string_view text, Properties* out, std::string* error);

}  // namespace sg::serve
