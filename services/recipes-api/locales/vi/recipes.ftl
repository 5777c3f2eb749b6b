# Thông báo của recipes-api (tiếng Việt).

problem-recipe_not_found-title = Không tìm thấy công thức
problem-recipe_not_found-detail = Không có công thức nào tại { $path }.
problem-invalid_credentials-title = Đăng nhập thất bại
problem-invalid_credentials-detail = Tên đăng nhập hoặc mật khẩu không đúng.
problem-invalid_refresh_token-title = Refresh token không hợp lệ
problem-invalid_refresh_token-detail = Refresh token không tồn tại, đã hết hạn, đã bị thu hồi hoặc đã được dùng. Hãy đăng nhập lại.
problem-sign_in_busy-title = Máy chủ đang bận
problem-sign_in_busy-detail = Hiện có quá nhiều mật khẩu đang được kiểm tra; hãy thử lại sau { $seconds } giây.
violation-too_many_bytes = chỉ được dài tối đa { $max } byte
problem-account_exists-title = Tài khoản đã tồn tại
problem-account_exists-detail = { $count ->
   *[other] Giá trị này đã được tài khoản khác sử dụng; xem chi tiết trong errors.
}
problem-account_blocked-title = Tài khoản bị khóa
problem-account_blocked-detail = Tài khoản này đã bị khóa. Hãy liên hệ bộ phận hỗ trợ để mở khóa.
violation-password_too_weak = quá yếu so với chính sách mật khẩu của nhà cung cấp định danh
violation-password_leaked = đã bị lộ trong một vụ rò rỉ dữ liệu; hãy chọn mật khẩu khác
violation-signup_rejected = bị nhà cung cấp định danh từ chối
