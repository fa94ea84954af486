module squatter

go 1.19
