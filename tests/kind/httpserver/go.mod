module ghostpay.local/kindtest

go 1.26.0
