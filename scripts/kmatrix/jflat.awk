# jflat.awk: flatten JSON, one document per input line, into one line per
# value: "RECORD<TAB>PATH<TAB>VALUE". RECORD is the input line number, PATH
# the keys and array indices joined by dots (`hops.3.netns_name`), VALUE the
# scalar (strings unquoted and unescaped, numbers as written, true, false,
# null; `{}` and `[]` for empty ones). Every array also gives `PATH.#` with
# its length. A line that is not JSON gives "RECORD<TAB>!text<TAB>LINE".
# For the kernel matrix's guest suite (busybox awk: no jq, no python there).
function skip() {
	while (pos <= len && index(" \t\r\n", substr(s, pos, 1)))
		pos++
}
function emit(path, v) {
	printf "%d\t%s\t%s\n", NR, path, v
}
function sub_path(path, k) {
	return path == "" ? k : path "." k
}
function str(   t) {
	# at a '"': the string, unescaped; pos moves past it
	if (!match(substr(s, pos), /^"([^"\\]|\\.)*"/)) {
		bad = 1
		return ""
	}
	t = substr(s, pos + 1, RLENGTH - 2)
	pos += RLENGTH
	if (index(t, "\\")) {
		gsub(/\\"/, "\"", t)
		gsub(/\\\//, "/", t)
		gsub(/\\n/, " ", t)
		gsub(/\\t/, " ", t)
		gsub(/\\\\/, "\\", t)
	}
	return t
}
function value(path,   c, k, n) {
	skip()
	c = substr(s, pos, 1)
	if (c == "{") {
		pos++
		skip()
		if (substr(s, pos, 1) == "}") {
			pos++
			emit(path, "{}")
			return
		}
		while (!bad) {
			skip()
			if (substr(s, pos, 1) != "\"") {
				bad = 1
				return
			}
			k = str()
			skip()
			if (substr(s, pos, 1) != ":") {
				bad = 1
				return
			}
			pos++
			value(sub_path(path, k))
			skip()
			c = substr(s, pos, 1)
			pos++
			if (c == "}")
				return
			if (c != ",")
				bad = 1
		}
		return
	}
	if (c == "[") {
		pos++
		skip()
		if (substr(s, pos, 1) == "]") {
			pos++
			emit(path, "[]")
			emit(sub_path(path, "#"), 0)
			return
		}
		n = 0
		while (!bad) {
			value(sub_path(path, n))
			n++
			skip()
			c = substr(s, pos, 1)
			pos++
			if (c == "]") {
				emit(sub_path(path, "#"), n)
				return
			}
			if (c != ",")
				bad = 1
		}
		return
	}
	if (c == "\"") {
		k = str()
		if (!bad)
			emit(path, k)
		return
	}
	if (match(substr(s, pos, 40), /^(-?[0-9][0-9.eE+-]*|true|false|null)/)) {
		emit(path, substr(s, pos, RLENGTH))
		pos += RLENGTH
		return
	}
	bad = 1
}
{
	s = $0
	len = length(s)
	pos = 1
	bad = 0
	skip()
	if (pos > len)
		next
	c0 = substr(s, pos, 1)
	if (c0 != "{" && c0 != "[") {
		emit("!text", s)
		next
	}
	value("")
	if (bad)
		emit("!bad", "at " pos ": " substr(s, 1, 200))
}
