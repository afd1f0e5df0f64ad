module ghostpay.local/runc-wrapper

go 1.22
