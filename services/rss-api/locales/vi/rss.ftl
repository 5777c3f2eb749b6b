# Thông báo của rss-api (tiếng Việt).

rss-fetch-received = đã nhận yêu cầu tải { $url }
problem-job_not_found-title = Không tìm thấy tác vụ
problem-job_not_found-detail = Bạn không có tác vụ tải nào tại { $path }.

rss-error-invalid_url = Không thể gửi yêu cầu tới địa chỉ nguồn tin này.
rss-error-blocked_address = Địa chỉ của nguồn tin thuộc mạng riêng hoặc mạng dành riêng, Galley không tải từ đó.
rss-error-too_many_redirects = Nguồn tin chuyển hướng quá nhiều lần.
rss-error-too_large = Nguồn tin lớn hơn mức Galley chấp nhận.
rss-error-http_client_error = Máy chủ của nguồn tin từ chối yêu cầu.
rss-error-http_server_error = Máy chủ của nguồn tin liên tục gặp lỗi.
rss-error-rate_limited = Máy chủ của nguồn tin yêu cầu Galley giảm tốc quá nhiều lần.
rss-error-timeout = Máy chủ của nguồn tin không trả lời kịp thời.
rss-error-connection_failed = Galley không kết nối được tới máy chủ của nguồn tin.
rss-error-unparseable_feed = Tài liệu không phải là nguồn tin mà Galley đọc được.
rss-error-internal_error = Galley không xử lý được nguồn tin.
