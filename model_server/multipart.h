// The request input of /predictions: the raw body, or the multipart/form-data field `data`
// (curl -F data=@img.png), as TorchServe accepts it.
#pragma once

#include <string>
#include <string_view>

namespace sg::serve {

// The input bytes of a prediction request. For multipart/form-data, the part named `data`
// (TorchServe also accepts "body"); otherwise the body itself. False with `error` on a
// malformed multipart body or one without such a field.
bool ExtractPredictionInput(std::string_view content_type, std::string_view body,
                            std::string_view* input, std::string* error);

}  // namespace sg::serve
