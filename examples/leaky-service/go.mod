module leaky-service

go 1.19
