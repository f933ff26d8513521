
mx1.example.test	192.0.2.12001:db8::1^
mx1.example.test@abababababababababababababababababababababababababababababababab€æþ‰"ec"@cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd