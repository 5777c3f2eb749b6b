# Thông báo lỗi HTTP và kiểm tra dữ liệu dùng chung (tiếng Việt).
# Vietnamese has no grammatical plural; Fluent's plural rules for "vi" always pick [other].

problem-bad_request-title = Yêu cầu không hợp lệ
problem-bad_request-detail = Không thể hiểu được yêu cầu.
problem-malformed_json-title = JSON không hợp lệ
problem-malformed_json-detail = Nội dung yêu cầu không phải JSON hợp lệ (dòng { $line }, cột { $column }).
problem-validation_failed-title = Yêu cầu không hợp lệ
problem-validation_failed-detail = { $count ->
   *[other] Có { $count } quy tắc bị vi phạm; xem chi tiết trong errors.
}
problem-unsupported_media_type-title = Kiểu dữ liệu không được hỗ trợ
problem-unsupported_media_type-detail = Hãy gửi nội dung yêu cầu dạng JSON với tiêu đề Content-Type: application/json.
problem-payload_too_large-title = Nội dung yêu cầu quá lớn
problem-payload_too_large-detail = Nội dung yêu cầu không được vượt quá { $limit }.
problem-route_not_found-title = Không tìm thấy
problem-route_not_found-detail = Không có tài nguyên nào tại { $path }.
problem-not_found-title = Không tìm thấy
problem-not_found-detail = Tài nguyên được yêu cầu không tồn tại.
problem-method_not_allowed-title = Phương thức không được phép
problem-method_not_allowed-detail = Phương thức { $method } không được phép trên { $path }.
problem-precondition_failed-title = Điều kiện tiên quyết không thỏa mãn
problem-precondition_failed-detail = Tài nguyên đã thay đổi kể từ khi bạn đọc nó; hãy tải lại và thử lại với ETag mới.
problem-conflict-title = Xung đột
problem-conflict-detail = Yêu cầu xung đột với trạng thái hiện tại của tài nguyên.
problem-unauthorized-title = Cần xác thực
problem-unauthorized-detail = Hãy đăng nhập và gửi access token hợp lệ.
problem-forbidden-title = Bị từ chối
problem-forbidden-detail = Bạn không được phép thực hiện thao tác này.
problem-too_many_requests-title = Quá nhiều yêu cầu
problem-too_many_requests-detail = Bạn đã thử quá nhiều lần; hãy thử lại sau { $seconds } giây.
problem-rate_limited-title = Quá nhiều yêu cầu
problem-rate_limited-detail = Địa chỉ của bạn đã gửi quá nhiều yêu cầu tới { $path }; hãy thử lại sau { $seconds } giây.
problem-request_timeout-title = Hết thời gian xử lý
problem-request_timeout-detail = Máy chủ không hoàn tất yêu cầu kịp thời; vui lòng thử lại.
problem-service_unavailable-title = Dịch vụ không khả dụng
problem-service_unavailable-detail = Một thành phần phụ thuộc của dịch vụ đang không khả dụng; vui lòng thử lại sau ít phút.
problem-internal_error-title = Lỗi máy chủ nội bộ
problem-internal_error-detail = Đã có lỗi xảy ra phía chúng tôi. Khi báo lỗi, hãy kèm mã yêu cầu { $request_id }.

violation-required = là bắt buộc
violation-blank = không được để trống
violation-too_short = phải dài ít nhất { $min } ký tự
violation-too_long = chỉ được dài tối đa { $max } ký tự
violation-too_few_items = phải có ít nhất { $min } mục
violation-too_many_items = chỉ được có tối đa { $max } mục
violation-out_of_range = phải nằm trong khoảng từ { $min } đến { $max }
violation-invalid_integer = phải là số nguyên
violation-invalid_choice = phải là một trong các giá trị: { $allowed }
violation-unknown_field = không phải là trường hợp lệ
violation-unknown_parameter = không phải là tham số truy vấn hợp lệ
violation-duplicate_parameter = chỉ được truyền một lần
violation-too_many_parameters = chỉ được chứa tối đa { $max } tham số
violation-invalid_type = phải là { $expected ->
    [string] một chuỗi
    [integer] một số nguyên
    [number] một số
    [boolean] true hoặc false
    [array] một mảng
    [object] một đối tượng
   *[other] giá trị thuộc kiểu khác
}
violation-invalid_value = có giá trị không hợp lệ
problem-cross_site_request-title = Yêu cầu liên trang bị từ chối
problem-cross_site_request-detail = Yêu cầu xác thực bằng cookie phiên phải đến từ chính trang này. Hãy gửi token qua tiêu đề Authorization: Bearer.
violation-taken = đã được sử dụng
violation-invalid_email = phải là địa chỉ email hợp lệ
violation-letters_only = chỉ được chứa các chữ cái từ a đến z và A đến Z
violation-missing_special_character = phải chứa ít nhất một trong các ký tự: { $allowed }
violation-invalid_url = phải là một URL tuyệt đối
violation-unsupported_scheme = phải dùng một trong các giao thức: { $allowed }
violation-credentials_in_url = không được chứa tên người dùng hoặc mật khẩu
